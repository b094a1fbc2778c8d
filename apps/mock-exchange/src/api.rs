//! The HTTP API: routes, handlers, error bodies, and the per-request log and metrics layer.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{MatchedPath, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::build_info;
use crate::db::{Db, DbError};
use crate::metrics::Metrics;
use crate::order::{self, FieldError, Raw};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Longest wait for a request body to arrive.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Every route, as (method, path template): the router and the OpenAPI test both use it.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/version"),
    ("post", "/order"),
    ("get", "/orders/{order_id}"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

/// The OpenAPI 3 description served at /openapi.json.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// What every handler shares.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    db: Db,
    metrics: Metrics,
    started_at: String,
}

impl AppState {
    /// Bundles the shared parts.
    pub fn new(db: Db, metrics: Metrics, started_at: String) -> Self {
        Self(Arc::new(Inner {
            db,
            metrics,
            started_at,
        }))
    }
}

/// The router with every route, the JSON fallbacks and the request layer.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/version", get(version))
        .route("/order", post(create_order))
        .route("/orders/{order_id}", get(get_order))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// An error answer: status plus a JSON body naming the class and, for input errors, the
/// field.
#[derive(Debug)]
pub enum ApiError {
    /// 400: a field is missing or invalid.
    Field(FieldError),
    /// 413: the body is larger than [`MAX_BODY_BYTES`].
    TooLarge,
    /// 408: the body did not arrive within [`BODY_TIMEOUT`].
    BodyTimeout,
    /// 415: the body is not JSON.
    MediaType(String),
    /// 404.
    NotFound(String),
    /// 503 or 500, from the database.
    Db(DbError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Field(e) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "invalid_field", "field": e.field, "message": e.message}),
            ),
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "body_too_large", "field": "body",
                       "message": format!("the body must be at most {MAX_BODY_BYTES} bytes")}),
            ),
            ApiError::BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                json!({"error": "body_timeout", "field": "body",
                       "message": format!("the body did not arrive within {} s", BODY_TIMEOUT.as_secs())}),
            ),
            ApiError::MediaType(found) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"error": "unsupported_media_type", "field": "content-type",
                       "message": format!("a body must be application/json, found {found:?}")}),
            ),
            ApiError::NotFound(what) => (
                StatusCode::NOT_FOUND,
                json!({"error": "not_found", "message": what}),
            ),
            ApiError::Db(e) if e.is_unavailable() => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "database_unavailable", "reason": e.reason(),
                       "message": e.to_string()}),
            ),
            ApiError::Db(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "internal", "reason": e.reason(), "message": e.to_string()}),
            ),
        };
        (status, axum::Json(body)).into_response()
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::Field(e)
    }
}

/// Records the request in metrics and writes one JSON log line for it.
async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let path = req.uri().path().to_string();
    let response = next.run(req).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .0
        .metrics
        .observe_request(&route, method.as_str(), status, elapsed.as_secs_f64());
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    let method = method.as_str();
    match status {
        500..=502 | 504..=599 => tracing::error!(
            target: "access", method, route, path, status, latency_ms, "request"
        ),
        503 => tracing::warn!(target: "access", method, route, path, status, latency_ms, "request"),
        _ => tracing::info!(target: "access", method, route, path, status, latency_ms, "request"),
    }
    response
}

async fn health() -> Response {
    axum::Json(json!({"status": "alive"})).into_response()
}

async fn ready(State(state): State<AppState>) -> Response {
    match state.0.db.check_ready().await {
        Ok(version) => {
            state.0.metrics.db_up.set(1);
            axum::Json(json!({"status": "ready", "schema_version": version})).into_response()
        }
        Err(e) => {
            // Pending migrations and a warming pool mean the database itself answered.
            let up = i64::from(matches!(
                e,
                DbError::MigrationsPending(_) | DbError::Warming(_)
            ));
            state.0.metrics.db_up.set(up);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"status": "not ready", "reason": e.reason(),
                                  "detail": e.to_string()})),
            )
                .into_response()
        }
    }
}

async fn version(State(state): State<AppState>) -> Response {
    axum::Json(json!({
        "version": build_info::VERSION,
        "git_sha": build_info::git_sha(),
        "build_id": build_info::build_id(),
        "build_time": build_info::build_time(),
        "started_at": state.0.started_at,
    }))
    .into_response()
}

async fn create_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Result<Response, ApiError> {
    // A client that never finishes its body must not hold a connection forever.
    let bytes = tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY_BYTES))
        .await
        .map_err(|_| ApiError::BodyTimeout)?
        .map_err(|_| ApiError::TooLarge)?;
    let query = query.unwrap_or_default();
    let new = if bytes.is_empty() {
        from_query(&query)?
    } else {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" {
            return Err(ApiError::MediaType(content_type));
        }
        if !query.is_empty() {
            return Err(FieldError::new(
                "query",
                "give the order either as query parameters or as a JSON body, not both",
            )
            .into());
        }
        from_json(&bytes)?
    };
    let stored = state.0.db.insert_order(&new).await;
    let stored = record_db(&state, stored)?;
    let location = format!("/orders/{}", stored.order_id);
    let mut response = (StatusCode::CREATED, axum::Json(stored)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

fn from_query(query: &str) -> Result<order::NewOrder, FieldError> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if !order::FIELDS.contains(&k.as_ref()) {
            return Err(FieldError::new(&field_name(&k), "unknown field"));
        }
        if fields.iter().any(|(seen, _)| *seen == k) {
            return Err(FieldError::new(&k, "given more than once"));
        }
        fields.push((k.into_owned(), v.into_owned()));
    }
    order::validate(|f| {
        fields
            .iter()
            .find(|(k, _)| k == f)
            .map(|(_, v)| Raw::Text(v.clone()))
    })
}

fn from_json(bytes: &[u8]) -> Result<order::NewOrder, FieldError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| FieldError::new("body", format!("is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(FieldError::new(
            "body",
            "must be a JSON object with symbol, side and qty",
        ));
    };
    if let Some(unknown) = map.keys().find(|k| !order::FIELDS.contains(&k.as_str())) {
        return Err(FieldError::new(&field_name(unknown), "unknown field"));
    }
    order::validate(|f| map.get(f).cloned().map(Raw::Json))
}

/// Field names are echoed back; keep them short and printable.
fn field_name(k: &str) -> String {
    k.chars()
        .filter(|c| !c.is_control())
        .take(32)
        .collect::<String>()
}

async fn get_order(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id.map_err(|_| FieldError::new("order_id", "is not valid UTF-8 in the path"))?;
    let id = order::order_id(&id)?;
    let found = state.0.db.get_order(id).await;
    match record_db(&state, found)? {
        Some(order) => Ok(axum::Json(order).into_response()),
        None => Err(ApiError::NotFound(format!("no order with id {id}"))),
    }
}

/// Keeps `db_up` current from the outcome of each database call.
fn record_db<T>(state: &AppState, r: Result<T, DbError>) -> Result<T, ApiError> {
    match r {
        Ok(v) => {
            state.0.metrics.db_up.set(1);
            Ok(v)
        }
        Err(e) => {
            if e.is_unavailable() {
                state.0.metrics.db_up.set(0);
            }
            Err(ApiError::Db(e))
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.0.metrics.render(state.0.db.pool_status());
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route; see /openapi.json".into())
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(json!({"error": "method_not_allowed",
                          "message": "method not allowed on this route; see /openapi.json"})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_form_rejects_unknown_and_repeated_fields() {
        assert_eq!(
            from_query("symbol=BTC&side=buy&qty=1&x=2").map_err(|e| e.field),
            Err("x".into())
        );
        assert_eq!(
            from_query("symbol=BTC&symbol=ETH&side=buy&qty=1").map_err(|e| e.field),
            Err("symbol".into())
        );
        assert!(from_query("symbol=BTC&side=buy&qty=1").is_ok());
    }

    #[test]
    fn json_form_rejects_non_objects_and_unknown_fields() {
        assert_eq!(from_json(b"[1]").map_err(|e| e.field), Err("body".into()));
        assert_eq!(from_json(b"{").map_err(|e| e.field), Err("body".into()));
        assert_eq!(
            from_json(br#"{"symbol":"BTC","side":"buy","qty":1,"price":3}"#).map_err(|e| e.field),
            Err("price".into())
        );
    }

    #[test]
    fn openapi_documents_exactly_the_routes() -> Result<(), serde_json::Error> {
        let doc: Value = serde_json::from_str(OPENAPI)?;
        assert!(
            doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
            "not OpenAPI 3"
        );
        let mut documented: Vec<(String, String)> = Vec::new();
        if let Some(paths) = doc["paths"].as_object() {
            for (path, ops) in paths {
                for method in ops.as_object().into_iter().flat_map(|o| o.keys()) {
                    documented.push((method.clone(), path.clone()));
                }
            }
        }
        documented.sort();
        let mut served: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        served.sort();
        assert_eq!(documented, served);
        assert_eq!(doc["info"]["version"], build_info::VERSION);
        Ok(())
    }
}
