//! Errors: [`ApiError`] is what a client is told (status + JSON `{error}`),
//! [`ServerError`] what the embedding job is told.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A request the server refuses, with the reason the client sees.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter or header with a value the route cannot use.
    #[error("bad {param}: {reason}")]
    BadParam { param: String, reason: String },
    /// The query string itself could not be parsed.
    #[error("bad query string: {0}")]
    BadQuery(String),
    /// The feature exists but is not configured in this server.
    #[error("{0}")]
    Unavailable(&'static str),
    /// What the request names does not exist (e.g. a car not in the race).
    #[error("{0}")]
    NotFound(String),
    /// The server failed (the store could not be read, ...); logged with
    /// its cause, the client gets a short reason.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub(crate) fn bad(param: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::BadParam {
            param: param.into(),
            reason: reason.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadParam { .. } | ApiError::BadQuery(_) => StatusCode::BAD_REQUEST,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.to_string() }));
        (self.status(), body).into_response()
    }
}

/// Failures of the server as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("server socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("starting the server's runtime thread: {0}")]
    Runtime(std::io::Error),
    #[error("the server thread panicked")]
    Panicked,
    #[error("installing the Prometheus recorder (is another metrics recorder installed?): {0}")]
    Metrics(#[from] metrics_exporter_prometheus::BuildError),
}
