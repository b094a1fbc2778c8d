//! One environment's stack on the swarm: rendered from the compose file and the override,
//! deployed by `docker stack deploy` on the manager, waited on until swarm reports every
//! replica running (a task with a health check runs only once healthy), and removed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use stackpilot_core::Config;
use stackpilot_core::compose::{APP_IMAGE_VAR, COMPOSE_FILE, DB_IMAGE_VAR, PORT_VAR};
use stackpilot_core::receipts::{self, BUILD_RECEIPT, BuildReceipt};

use super::render::{self, OVERRIDE_FILE, Rendered};
use super::{CALL, Swarm, wait_until};
use crate::error::{Error, failed};

/// Label swarm puts on a stack's services, tasks' containers, networks and volumes.
pub const NAMESPACE_LABEL: &str = "com.docker.stack.namespace";
/// Variable of the override: how many worker nodes the inventory has.
pub const WORKERS_VAR: &str = "STACKPILOT_WORKERS";

/// An environment's stack: named after the environment's compose project, so the db keeps
/// the same volume name (`<project>_db-data`) in both modes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stack {
    /// The stack's name (the environment's project).
    pub name: String,
    /// The environment.
    pub env: String,
}

/// What was deployed, recorded on the host (`<host state>/swarm/<env>.json`) for verify,
/// drills and rollback: the app by registry digest and the build it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    /// The stack.
    pub stack: String,
    /// The app image services pin: `<registry>/<project>/mock-exchange@sha256:…`.
    pub app_image: String,
    /// The build receipt of the image (image id, tag, build id, git sha).
    pub build: BuildReceipt,
    /// When it was deployed (RFC 3339, UTC).
    pub deployed_at: String,
    /// The deployment it replaced (one level; its own `previous` is dropped): what
    /// `make rollback MODE=swarm` goes back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Box<Deployed>>,
}

impl Deployed {
    /// A deployment of `app_image` (built as `build`) replacing `replaced`, if any.
    pub fn replacing(
        stack: &str,
        app_image: String,
        build: BuildReceipt,
        replaced: Option<Deployed>,
    ) -> Deployed {
        let previous = match replaced {
            // Redeploying the same digest keeps what it replaced.
            Some(old) if old.app_image == app_image => old.previous,
            Some(old) => Some(Box::new(Deployed {
                previous: None,
                ..old
            })),
            None => None,
        };
        Deployed {
            stack: stack.to_string(),
            app_image,
            build,
            deployed_at: stackpilot_core::time::now_rfc3339(),
            previous,
        }
    }
}

/// The api service as the manager reports it: its update, the image its spec pins, the
/// image of the spec before, and its running tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    /// `<stack>_api`.
    pub service: String,
    /// `UpdateStatus.State` (`updating`, `completed`, `rollback_completed`, `paused`, …;
    /// empty when the service was never updated).
    pub update_state: String,
    /// `Spec…ContainerSpec.Image`.
    pub spec_image: String,
    /// `PreviousSpec…ContainerSpec.Image` (empty without a previous spec).
    pub previous_image: String,
    /// Replicas wanted.
    pub desired: u32,
    /// Tasks whose desired state is running.
    pub tasks: Vec<TaskView>,
}

/// One task of a service: where, what image, in which state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskView {
    /// The node it is on.
    pub node: String,
    /// The image its spec pins.
    pub image: String,
    /// `CurrentState` (`Running 5 seconds ago`, `Starting …`, …).
    pub state: String,
}

/// `docker service inspect` format read by [`parse_service`].
const SERVICE_FORMAT: &str = "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}|{{.Spec.TaskTemplate.ContainerSpec.Image}}|{{if .PreviousSpec}}{{.PreviousSpec.TaskTemplate.ContainerSpec.Image}}{{end}}|{{if .Spec.Mode.Replicated}}{{.Spec.Mode.Replicated.Replicas}}{{end}}";
/// `docker service ps` format read by [`parse_tasks`].
const TASK_FORMAT: &str = "{{.Node}}|{{.Image}}|{{.CurrentState}}";

/// The compose service of the api.
const API_SERVICE: &str = "api";

/// The image lock's Postgres tag: the db image every deploy pins.
fn db_image(root: &Path) -> Result<String, Error> {
    let lock_path = stackpilot_core::images::ImageLock::path(root);
    match stackpilot_core::images::ImageLock::read(&lock_path)? {
        Some(lock) => Ok(lock
            .tag(stackpilot_core::images::POSTGRES, &lock_path)?
            .to_string()),
        None => Err(failed("swarm", "read the image lock", "no image lock")),
    }
}

fn no_deployment(stack: &Stack) -> Error {
    failed(
        "swarm",
        &format!("stack {}", stack.name),
        "nothing deployed on this host's record: make up MODE=swarm",
    )
}

/// The variables of `service` whose value `changed` renders differently from `normal`
/// (new ones included), as `NAME=VALUE` pairs in name order. Pure.
pub fn changed_env(normal: &Rendered, changed: &Rendered, service: &str) -> Vec<(String, String)> {
    let env = |r: &Rendered| {
        r.file
            .services
            .get(service)
            .map(|s| s.environment.clone())
            .unwrap_or_default()
    };
    let before = env(normal);
    env(changed)
        .into_iter()
        .filter(|(k, v)| before.get(k) != Some(v))
        .collect()
}

/// Parses `docker service inspect --format SERVICE_FORMAT` and `docker service ps
/// --format TASK_FORMAT` into a view of `service`.
pub fn parse_service(service: &str, inspect: &str, ps: &str) -> Option<ServiceView> {
    let mut f = inspect.trim().splitn(4, '|');
    let (state, spec, previous, desired) = (f.next()?, f.next()?, f.next()?, f.next()?);
    Some(ServiceView {
        service: service.to_string(),
        update_state: state.to_string(),
        spec_image: spec.to_string(),
        previous_image: previous.to_string(),
        desired: desired.parse().ok()?,
        tasks: ps
            .lines()
            .filter_map(|l| {
                let mut f = l.trim().splitn(3, '|');
                Some(TaskView {
                    node: f.next()?.to_string(),
                    image: f.next()?.to_string(),
                    state: f.next()?.to_string(),
                })
            })
            .collect(),
    })
}

/// One service's replicas as `docker service ls` reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replicas {
    /// Service name (`<stack>_<service>`).
    pub service: String,
    /// Tasks running.
    pub running: u32,
    /// Tasks wanted.
    pub desired: u32,
}

/// Parses `docker service ls --format '{{.Name}}|{{.Replicas}}'` (`2/2 (max 1 per node)`).
pub fn parse_replicas(text: &str) -> Vec<Replicas> {
    text.lines()
        .filter_map(|l| {
            let (service, rest) = l.trim().split_once('|')?;
            let counts = rest.split_whitespace().next()?;
            let (running, desired) = counts.split_once('/')?;
            Some(Replicas {
                service: service.to_string(),
                running: running.parse().ok()?,
                desired: desired.parse().ok()?,
            })
        })
        .collect()
}

/// How long every worker may take to answer `/ready` 200 once its replica runs.
pub const READY_WITHIN: Duration = Duration::from_secs(90);
/// How long a worker may stay unready before the db task is replaced once.
pub const NUDGE_AFTER: Duration = Duration::from_secs(10);

impl Stack {
    /// The stack of environment `env`.
    pub fn for_env(cfg: &Config, env: &str) -> Result<Stack, Error> {
        Ok(Stack {
            name: cfg.environment(env)?.project().to_string(),
            env: env.to_string(),
        })
    }

    /// Where the host records what was deployed.
    pub fn record_path(&self, root: &Path, cfg: &Config) -> PathBuf {
        root.join(&cfg.state.host_dir)
            .join("swarm")
            .join(format!("{}.json", self.env))
    }

    /// The last deployment recorded on the host, if any.
    pub fn deployed(&self, root: &Path, cfg: &Config) -> Option<Deployed> {
        receipts::read(&self.record_path(root, cfg)).ok()
    }

    /// The build receipt of the environment on the manager (where swarm mode builds).
    pub fn build_receipt(&self, swarm: &Swarm, cfg: &Config) -> Result<BuildReceipt, Error> {
        let path = receipts::env_dir(&cfg.state.node_dir, &self.env).join(BUILD_RECEIPT);
        let path = path.display().to_string();
        let text = swarm.manager_transport()?.output(&["cat", &path], CALL)?;
        serde_json::from_str(&text).map_err(|e| {
            failed(
                "swarm",
                &format!("{}: read {path}", swarm.manager.name),
                &format!("not a build receipt ({e}); rebuild: make demo MODE=swarm"),
            )
        })
    }

    /// Renders the stack file: the repo's compose file and override, the env file, the app
    /// image by digest, the locked db image, the environment's port, the worker count.
    pub fn render(
        &self,
        root: &Path,
        cfg: &Config,
        swarm: &Swarm,
        app_image: &str,
        db_image: &str,
    ) -> Result<Rendered, Error> {
        self.render_with(root, cfg, swarm, (app_image, db_image), &[])
    }

    /// [`Stack::render`] with `overrides` in place of the env file's values.
    fn render_with(
        &self,
        root: &Path,
        cfg: &Config,
        swarm: &Swarm,
        (app_image, db_image): (&str, &str),
        overrides: &[(&str, &str)],
    ) -> Result<Rendered, Error> {
        let env = cfg.environment(&self.env)?;
        let read = |rel: &Path| {
            std::fs::read_to_string(root.join(rel))
                .map_err(|e| failed("swarm", &format!("read {}", rel.display()), &e.to_string()))
        };
        let mut vars = render::parse_env_file(&read(&env.env_file)?);
        for (k, v) in overrides {
            vars.insert((*k).into(), (*v).into());
        }
        vars.insert(APP_IMAGE_VAR.into(), app_image.into());
        vars.insert(DB_IMAGE_VAR.into(), db_image.into());
        vars.insert(PORT_VAR.into(), env.port().to_string());
        vars.insert(WORKERS_VAR.into(), swarm.workers().count().to_string());
        let rendered = render::render(
            &read(Path::new(COMPOSE_FILE))?,
            &read(Path::new(OVERRIDE_FILE))?,
            &vars,
        )?;
        for d in &rendered.dropped {
            eprintln!(
                "==> swarm: {}.{} not carried to swarm: {}",
                d.service, d.key, d.why
            );
        }
        Ok(rendered)
    }

    /// `docker stack deploy` of the rendered file on the manager (`--prune`: services no
    /// longer in the file go; `--resolve-image never`: the app is pinned by digest already
    /// and the db image is local to control, so nothing asks a registry for tags).
    pub fn deploy(&self, swarm: &Swarm, rendered: &Rendered) -> Result<(), Error> {
        let out = swarm.manager_transport()?.output_with_input(
            &[
                "docker",
                "stack",
                "deploy",
                "--prune",
                "--resolve-image",
                "never",
                "-c",
                "-",
                &self.name,
            ],
            rendered.yaml().as_bytes(),
            Duration::from_secs(120),
        )?;
        for line in out.lines() {
            eprintln!("[{}] {line}", swarm.manager.name);
        }
        Ok(())
    }

    /// Releases the manager's build of the environment: pushes it to the lab registry,
    /// deploys the stack pinned to the pushed digest, records the deployment on the host,
    /// then waits until every replica runs.
    pub fn release(&self, root: &Path, cfg: &Config, swarm: &Swarm) -> Result<Deployed, Error> {
        let build = self.build_receipt(swarm, cfg)?;
        let app_image = swarm.registry().push(&build.tag, &self.name)?;
        let deployed = self.update(root, cfg, swarm, app_image, build)?;
        self.wait_converged(swarm, super::CONVERGE)?;
        Ok(deployed)
    }

    /// Deploys the stack with the api pinned to `app_image` (already in the lab registry,
    /// built as `build`) and records it on the host, with the deployment it replaces;
    /// does not wait.
    pub fn update(
        &self,
        root: &Path,
        cfg: &Config,
        swarm: &Swarm,
        app_image: String,
        build: BuildReceipt,
    ) -> Result<Deployed, Error> {
        let rendered = self.render(root, cfg, swarm, &app_image, &db_image(root)?)?;
        self.deploy(swarm, &rendered)?;
        let deployed = Deployed::replacing(&self.name, app_image, build, self.deployed(root, cfg));
        self.record(root, cfg, &deployed)?;
        Ok(deployed)
    }

    /// The deployment recorded on the host deployed again: the same app digest, the env
    /// file's values (undoing any `docker service update` made since); waits until every
    /// replica runs.
    pub fn redeploy(&self, root: &Path, cfg: &Config, swarm: &Swarm) -> Result<Deployed, Error> {
        let d = self
            .deployed(root, cfg)
            .ok_or_else(|| no_deployment(self))?;
        let deployed = self.update(root, cfg, swarm, d.app_image, d.build)?;
        self.wait_converged(swarm, super::CONVERGE)?;
        Ok(deployed)
    }

    /// Updates the api service alone to the environment the stack file gives it with
    /// `overrides` in place of the env file's values (a drill's wrong `POSTGRES_PASSWORD`):
    /// `docker service update --detach --no-resolve-image --env-add NAME=VALUE …` of the
    /// api's variables that differ, on the deployed digest. The db's service is not
    /// touched; swarm replaces every api replica by the service's update policy. Does not
    /// wait; returns the command, with the names (not the values) of what it changed.
    pub fn update_api_env(
        &self,
        root: &Path,
        cfg: &Config,
        swarm: &Swarm,
        overrides: &[(&str, &str)],
    ) -> Result<String, Error> {
        let d = self
            .deployed(root, cfg)
            .ok_or_else(|| no_deployment(self))?;
        let images = (d.app_image.as_str(), &*db_image(root)?);
        let normal = self.render_with(root, cfg, swarm, images, &[])?;
        let changed = self.render_with(root, cfg, swarm, images, overrides)?;
        let adds = changed_env(&normal, &changed, API_SERVICE);
        if adds.is_empty() {
            return Err(failed(
                "swarm",
                &format!("docker service update {}", self.api_service()),
                "the overrides change none of the api's environment",
            ));
        }
        let svc = self.api_service();
        let mut argv = vec![
            "docker".to_string(),
            "service".into(),
            "update".into(),
            "--detach".into(),
            "--no-resolve-image".into(),
        ];
        for (k, v) in &adds {
            argv.extend(["--env-add".to_string(), format!("{k}={v}")]);
        }
        argv.push(svc.clone());
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        swarm.manager_transport()?.output(&argv, CALL)?;
        let names: Vec<&str> = adds.iter().map(|(k, _)| k.as_str()).collect();
        Ok(format!(
            "docker service update --detach --no-resolve-image --env-add {} {svc}",
            names.join(" --env-add ")
        ))
    }

    /// Waits until every worker's published port answers `/ready` 200 (within
    /// [`READY_WITHIN`]). Swarm has no start order: a replica runs (its health check is
    /// liveness) before it reaches the db. After a halt the engines (20.10) can also lose the
    /// db's name entry on a worker for good: `/ready` 503 "failed to lookup address
    /// information" for minutes while every overlay peer is connected (seen after down,
    /// halt, up). A new db task announces its name again, so a worker still unready after
    /// [`NUDGE_AFTER`] gets the db task replaced once (`docker service update --force`:
    /// Postgres restarts on its kept volume).
    pub fn wait_ready(&self, swarm: &Swarm, cfg: &Config) -> Result<(), Error> {
        let port = cfg.environment(&self.env)?.port();
        let timeouts = stackpilot_core::http::Timeouts {
            connect: Duration::from_secs(2),
            total: Duration::from_secs(5),
        };
        let started = std::time::Instant::now();
        let mut nudged = false;
        for w in swarm.workers() {
            let url = format!("http://{}:{port}/ready", w.address);
            wait_until(&format!("GET {url}: 200"), READY_WITHIN, || {
                let probe = stackpilot_core::http::get(&url, timeouts);
                if probe.answer().is_some_and(|(status, _)| status == 200) {
                    let secs = started.elapsed().as_secs_f64();
                    eprintln!("==> swarm: {} ready after {secs:.1}s", w.name);
                    return Ok(true);
                }
                if !nudged && started.elapsed() > NUDGE_AFTER {
                    nudged = true;
                    let db = format!("{}_db", self.name);
                    eprintln!(
                        "==> swarm: {} not ready after {}s ({:?}): replacing the db task so its name is announced again",
                        w.name,
                        NUDGE_AFTER.as_secs(),
                        probe.outcome
                    );
                    let argv = ["docker", "service", "update", "--force", "--detach", &db];
                    swarm.manager_transport()?.output(&argv, CALL)?;
                }
                Ok(false)
            })?;
        }
        Ok(())
    }

    /// The api service's name (`<stack>_api`).
    pub fn api_service(&self) -> String {
        format!("{}_api", self.name)
    }

    /// The api service as the manager reports it now.
    pub fn api_view(&self, swarm: &Swarm) -> Result<ServiceView, Error> {
        let t = swarm.manager_transport()?;
        let svc = self.api_service();
        let inspect = t.output(
            &[
                "docker",
                "service",
                "inspect",
                "--format",
                SERVICE_FORMAT,
                &svc,
            ],
            CALL,
        )?;
        let ps = t.output(
            &[
                "docker",
                "service",
                "ps",
                "--filter",
                "desired-state=running",
                "--no-trunc",
                "--format",
                TASK_FORMAT,
                &svc,
            ],
            CALL,
        )?;
        parse_service(&svc, &inspect, &ps).ok_or_else(|| {
            failed(
                "swarm",
                &format!("docker service inspect {svc}"),
                &format!("unreadable: {inspect}"),
            )
        })
    }

    /// `docker service rollback` of the api: swarm puts back the spec before the last
    /// update (its `PreviousSpec`); does not wait.
    pub fn rollback_api(&self, swarm: &Swarm) -> Result<String, Error> {
        let svc = self.api_service();
        let out = swarm
            .manager_transport()?
            .output(&["docker", "service", "rollback", "--detach", &svc], CALL)?;
        Ok(format!("$ docker service rollback --detach {svc}\n{out}"))
    }

    /// The swarm half of a clean room: the stack removed (volumes kept) and the
    /// environment's app images removed from the lab registry. Each node's own clean room
    /// (`clean-room --env`) removes the images it pulled or built.
    pub fn clear(&self, swarm: &Swarm) -> Result<(), Error> {
        self.remove(swarm)?;
        swarm.registry().remove_repository(&self.name)
    }

    /// Records a deployment on the host.
    pub fn record(&self, root: &Path, cfg: &Config, d: &Deployed) -> Result<(), Error> {
        let path = self.record_path(root, cfg);
        receipts::write(&path, d).map_err(|e| {
            failed(
                "swarm",
                &format!("write {}", path.display()),
                &e.to_string(),
            )
        })
    }

    /// Sets the desired replicas of the stack's `service` (`docker service scale --detach`
    /// on the manager), then waits up to `limit` until swarm reports that many running (0:
    /// the last task stopped; a task with a health check runs once healthy). Returns what
    /// the manager printed. The next deploy sets the stack file's count again.
    pub fn scale(
        &self,
        swarm: &Swarm,
        service: &str,
        replicas: u32,
        limit: Duration,
    ) -> Result<String, Error> {
        let full = format!("{}_{service}", self.name);
        let target = format!("{full}={replicas}");
        let argv = ["docker", "service", "scale", "--detach", &target];
        let out = swarm.manager_transport()?.output(&argv, CALL)?;
        wait_until(&format!("{full}: {replicas} running"), limit, || {
            let r = self.replicas(swarm)?;
            Ok(r.iter()
                .any(|s| s.service == full && s.running == replicas && s.desired == replicas))
        })?;
        Ok(out)
    }

    /// Each service of the stack with its replica counts.
    pub fn replicas(&self, swarm: &Swarm) -> Result<Vec<Replicas>, Error> {
        let out = swarm.manager_transport()?.output(
            &[
                "docker",
                "service",
                "ls",
                "--filter",
                &format!("label={NAMESPACE_LABEL}={}", self.name),
                "--format",
                "{{.Name}}|{{.Replicas}}",
            ],
            CALL,
        )?;
        Ok(parse_replicas(&out))
    }

    /// Waits until every service of the stack runs all its desired replicas and no update
    /// is in progress.
    pub fn wait_converged(&self, swarm: &Swarm, limit: Duration) -> Result<(), Error> {
        wait_until(
            &format!("stack {}: every replica running", self.name),
            limit,
            || {
                let r = self.replicas(swarm)?;
                let whole = !r.is_empty() && r.iter().all(|s| s.running == s.desired);
                Ok(whole && !self.updating(swarm)?)
            },
        )?;
        for r in self.replicas(swarm)? {
            eprintln!(
                "==> swarm: {} {}/{} running",
                r.service, r.running, r.desired
            );
        }
        Ok(())
    }

    fn updating(&self, swarm: &Swarm) -> Result<bool, Error> {
        let t = swarm.manager_transport()?;
        for r in self.replicas(swarm)? {
            let state = t.output(
                &[
                    "docker",
                    "service",
                    "inspect",
                    "--format",
                    "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
                    &r.service,
                ],
                CALL,
            )?;
            if matches!(state.trim(), "updating" | "rollback_started") {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Removes the stack (services, networks; volumes stay) and waits until no container of
    /// it is left on any node and its network is gone, so a deploy right after starts clean.
    /// No change when there is no such stack.
    pub fn remove(&self, swarm: &Swarm) -> Result<(), Error> {
        let t = swarm.manager_transport()?;
        if super::manager_action(&super::Membership::of(&swarm.manager)?) != super::Action::Keep {
            // No swarm here: no stack to remove.
            return Ok(());
        }
        if !self.replicas(swarm)?.is_empty() {
            // `docker stack rm` fails on the stack's network while a task of it is still
            // shutting down ("network … is in use by task", seen here on Docker 20.10 right
            // after the drills); again a moment later it removes what is left.
            wait_until(
                &format!("docker stack rm {}", self.name),
                Duration::from_secs(60),
                || {
                    Ok(t.output(&["docker", "stack", "rm", &self.name], CALL)
                        .map(|_| true)?)
                },
            )?;
            eprintln!("==> swarm: stack {} removed", self.name);
        }
        let label = format!("label={NAMESPACE_LABEL}={}", self.name);
        for node in swarm.nodes.iter().filter(|n| n.transport.is_some()) {
            let nt = node.transport()?;
            wait_until(
                &format!("{}: containers of stack {} stopped", node.name, self.name),
                Duration::from_secs(90),
                || {
                    let left = nt.output(&["docker", "ps", "-q", "--filter", &label], CALL)?;
                    Ok(left.trim().is_empty())
                },
            )?;
            // An exited task container whose task swarm pruned while the node was down (a
            // halted worker during many updates) is never removed by its agent: remove it.
            let exited = nt.output(&["docker", "ps", "-aq", "--filter", &label], CALL)?;
            let ids: Vec<&str> = exited.split_whitespace().collect();
            if !ids.is_empty() {
                let argv = [&["docker", "rm", "-f"][..], &ids].concat();
                nt.output(&argv, CALL)?;
                eprintln!(
                    "==> swarm: {}: {} exited container(s) of stack {} removed",
                    node.name,
                    ids.len(),
                    self.name
                );
            }
        }
        wait_until(
            &format!("stack {}: network removed", self.name),
            Duration::from_secs(60),
            || {
                let left =
                    t.output(&["docker", "network", "ls", "-q", "--filter", &label], CALL)?;
                Ok(left.trim().is_empty())
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_are_read_with_or_without_the_per_node_note() {
        let got = parse_replicas("p_api|2/2 (max 1 per node)\np_db|0/1\n");
        assert_eq!(
            got,
            [
                Replicas {
                    service: "p_api".into(),
                    running: 2,
                    desired: 2
                },
                Replicas {
                    service: "p_db".into(),
                    running: 0,
                    desired: 1
                }
            ]
        );
        assert!(parse_replicas("garbage").is_empty());
    }

    #[test]
    fn the_service_view_reads_state_images_and_running_tasks() {
        let v = parse_service(
            "p_api",
            "rollback_completed|r/m@sha256:b|r/m@sha256:a|2\n",
            "worker1|r/m@sha256:b|Running 3 seconds ago\nworker2|r/m@sha256:b|Starting 1 second ago\n",
        )
        .expect("view");
        assert_eq!(v.update_state, "rollback_completed");
        assert_eq!(
            (v.spec_image.as_str(), v.previous_image.as_str()),
            ("r/m@sha256:b", "r/m@sha256:a")
        );
        assert_eq!(v.desired, 2);
        assert_eq!(v.tasks[1].node, "worker2");
        assert!(v.tasks[1].state.starts_with("Starting"));
        let never = parse_service("p_api", "|r/m@sha256:a||1", "").expect("view");
        assert_eq!((never.update_state.as_str(), never.desired), ("", 1));
        assert_eq!(parse_service("p_api", "garbage", ""), None);
    }

    #[test]
    fn a_deployment_remembers_the_one_it_replaced_one_level_deep() {
        let build = |id: &str| BuildReceipt {
            env: "dev".into(),
            image_id: id.into(),
            tag: format!("t:{id}"),
            build_id: id.into(),
            built_at: String::new(),
            git_sha: String::new(),
            dirty: false,
        };
        let a = Deployed::replacing("s", "r@a".into(), build("a"), None);
        assert_eq!(a.previous, None);
        let b = Deployed::replacing("s", "r@b".into(), build("b"), Some(a.clone()));
        assert_eq!(
            b.previous.as_deref().map(|p| p.app_image.as_str()),
            Some("r@a")
        );
        let c = Deployed::replacing("s", "r@c".into(), build("c"), Some(b.clone()));
        let p = c.previous.expect("previous");
        assert_eq!((p.app_image.as_str(), p.previous), ("r@b", None));
        let again = Deployed::replacing("s", "r@b".into(), build("b"), Some(b));
        assert_eq!(again.previous.map(|p| p.app_image), Some("r@a".to_string()));
    }

    #[test]
    fn a_wrong_password_changes_only_the_apis_database_url() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let read = |rel: &str| std::fs::read_to_string(repo.join(rel)).expect(rel);
        let mut vars = render::parse_env_file(&read("infra/env/dev.env"));
        for (k, v) in [
            (APP_IMAGE_VAR, "r/m@sha256:a"),
            (DB_IMAGE_VAR, "pg:1"),
            (PORT_VAR, "8000"),
            (WORKERS_VAR, "2"),
        ] {
            vars.insert(k.into(), v.into());
        }
        let (compose, overlay) = (read(COMPOSE_FILE), read(OVERRIDE_FILE));
        let normal = render::render(&compose, &overlay, &vars).expect("rendered");
        vars.insert("POSTGRES_PASSWORD".into(), "wrong".into());
        let wrong = render::render(&compose, &overlay, &vars).expect("rendered");
        assert_eq!(
            changed_env(&normal, &wrong, "api"),
            [(
                "DATABASE_URL".to_string(),
                // The test's own wrong password, never a real one.
                "postgres://exchange:wrong@db:5432/exchange_dev".to_string() // pragma: allowlist secret
            )]
        );
        assert_eq!(changed_env(&normal, &normal, "api"), []);
    }

    #[test]
    fn a_stack_is_named_after_its_environments_project() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let cfg = Config::load_file(&repo.join("stackpilot.toml")).expect("config");
        let s = Stack::for_env(&cfg, "dev").expect("dev");
        assert_eq!(s.name, "stackpilot-dev");
        assert!(
            s.record_path(&repo, &cfg)
                .ends_with(".stackpilot/swarm/dev.json")
        );
        assert!(Stack::for_env(&cfg, "nope").is_err());
    }
}
