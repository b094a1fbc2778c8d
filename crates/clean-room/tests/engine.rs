//! clean-room against the host's real Docker engine, on containers, images and a volume
//! this test creates under names of its own.

mod support;

use std::collections::BTreeSet;

use clean_room::CleanScope;
use stackpilot_core::admin::DockerAdmin;
use stackpilot_core::capability::{self, Capability};
use stackpilot_core::receipts::{self, CLEAN_RECEIPT, CleanReceipt};
use support::{Cleanup, allowed, docker, docker_ok, sleeper, sleeper_image, unique};

#[test]
fn engine_removes_project_containers_and_app_images_keeps_volumes_and_other_projects() {
    if !capability::require(&[Capability::Docker]) {
        return;
    }
    let project = unique("cr-test");
    let other = format!("{project}-other");
    let app = format!("stackpilot.app={project}-app");
    let (image_a, image_a2, image_b) = (
        format!("{project}/app:a"),
        format!("{project}/app:a2"),
        format!("{project}/app:b"),
    );
    let volume = format!("{project}_data");
    let network = format!("{project}_default");
    let other_network = format!("{other}_default");
    let _cleanup = Cleanup {
        labels: vec![
            format!("com.docker.compose.project={project}"),
            format!("com.docker.compose.project={other}"),
        ],
        images: vec![image_a.clone(), image_a2.clone(), image_b.clone()],
        volumes: vec![volume.clone()],
        networks: vec![network.clone(), other_network.clone()],
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let bin = sleeper(tmp.path());
    let app_label = ("stackpilot.app", app.trim_start_matches("stackpilot.app="));
    sleeper_image(tmp.path(), &bin, &image_a, &[app_label]);
    // A second image, different content (another label), same app.
    sleeper_image(tmp.path(), &bin, &image_b, &[app_label, ("variant", "b")]);
    docker(&["tag", &image_a, &image_a2]);
    docker(&["volume", "create", &volume]);

    let in_project = format!("com.docker.compose.project={project}");
    // The project's network, labelled as compose labels it, with a container attached;
    // another project's network stays.
    docker(&["network", "create", "--label", &in_project, &network]);
    docker(&[
        "network",
        "create",
        "--label",
        &format!("com.docker.compose.project={other}"),
        &other_network,
    ]);
    let running = docker(&[
        "run",
        "-d",
        "--label",
        &in_project,
        "--label",
        "com.docker.compose.service=api",
        "-v",
        &format!("{volume}:/data"),
        "--network",
        &network,
        &image_a,
    ]);
    let stopped = docker(&["create", "--label", &in_project, &image_a]);
    let oneoff = docker(&[
        "create",
        "--label",
        &in_project,
        "--label",
        "com.docker.compose.oneoff=True",
        &image_a,
    ]);
    let foreign = docker(&[
        "run",
        "-d",
        "--name",
        &format!("{other}-api"),
        "--label",
        &format!("com.docker.compose.project={other}"),
        &image_b,
    ]);
    let id_b = docker(&["image", "inspect", "-f", "{{.Id}}", &image_b]);

    let admin = DockerAdmin::connect().expect("a Docker engine on this host");
    let target = CleanScope {
        env: "dev".into(),
        project: project.clone(),
        app_images: app.clone(),
    };
    let summary =
        clean_room::run(&allowed(), &admin, &target, tmp.path()).expect("clean-room runs");

    let removed: BTreeSet<String> = summary.receipt.removed_containers.iter().cloned().collect();
    assert_eq!(removed, BTreeSet::from([running, stopped, oneoff]));
    assert_eq!(
        docker(&["ps", "-aq", "--filter", &format!("label={in_project}")]),
        "",
        "no container of the project is left"
    );
    assert!(
        !docker_ok(&["image", "inspect", &image_a]),
        "app image removed"
    );
    assert!(
        !docker_ok(&["image", "inspect", &image_a2]),
        "every tag removed"
    );
    assert_eq!(summary.receipt.removed_images.len(), 1);
    assert!(
        summary.image_tags.contains(&image_a2),
        "{:?}",
        summary.image_tags
    );

    assert!(
        docker_ok(&["image", "inspect", &image_b]),
        "another project's image kept"
    );
    assert_eq!(summary.kept_images.len(), 1);
    assert_eq!(summary.kept_images[0].image, id_b);
    assert!(
        summary.kept_images[0]
            .reason
            .contains(&format!("{other}-api")),
        "{}",
        summary.kept_images[0].reason
    );
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Running}}", &foreign]),
        "true",
        "another project's container untouched"
    );
    assert!(docker_ok(&["volume", "inspect", &volume]), "volume kept");
    assert_eq!(summary.networks, vec![network.clone()]);
    assert!(
        !docker_ok(&["network", "inspect", &network]),
        "the project's network removed"
    );
    assert!(
        docker_ok(&["network", "inspect", &other_network]),
        "another project's network kept"
    );

    let on_disk: CleanReceipt =
        receipts::read(&tmp.path().join("dev").join(CLEAN_RECEIPT)).expect("clean receipt");
    assert_eq!(on_disk, summary.receipt);
}
