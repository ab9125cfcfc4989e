//! The build's HTTP server: `http_directory` and `http_content` for guests
//! that fetch a seed or preseed file at boot.
//!
//! Packer listens on every interface; kiln binds 127.0.0.1 unless
//! `http_bind_address` says otherwise: QEMU's user-mode network reaches the
//! host's loopback as 10.0.2.2, and nothing else on the network needs to
//! read a seed that may hold credentials.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::services::ServeDir;

/// What to serve and where.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpPlan {
    pub bind: IpAddr,
    pub port_min: u16,
    pub port_max: u16,
    pub content: HttpContent,
}

#[derive(Clone, Debug, PartialEq)]
pub enum HttpContent {
    Directory(PathBuf),
    /// Path (with leading `/`) → body, already rendered.
    Files(BTreeMap<String, String>),
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("no free port for the HTTP server on {bind} in {min}..={max}: {last}")]
    NoFreePort {
        bind: IpAddr,
        min: u16,
        max: u16,
        last: std::io::Error,
    },
    #[error("`http_directory` {0} is not a directory")]
    NotADirectory(PathBuf),
}

/// A running server; dropping it (or `stop`) shuts it down.
pub struct HttpServer {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl HttpServer {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Bind the first free port of the range (starting at a point derived
/// from the process id, so parallel builds don't race for the same one)
/// and serve.
pub async fn start(plan: &HttpPlan) -> Result<HttpServer, HttpError> {
    if let HttpContent::Directory(dir) = &plan.content
        && !dir.is_dir()
    {
        return Err(HttpError::NotADirectory(dir.clone()));
    }
    let listener = bind_in_range(plan.bind, plan.port_min, plan.port_max).await?;
    let addr = listener
        .local_addr()
        .map_err(|last| HttpError::NoFreePort {
            bind: plan.bind,
            min: plan.port_min,
            max: plan.port_max,
            last,
        })?;
    let app = match &plan.content {
        HttpContent::Directory(dir) => Router::new().fallback_service(ServeDir::new(dir)),
        HttpContent::Files(files) => {
            let files = Arc::new(files.clone());
            Router::new().fallback(move |req: Request<Body>| {
                let files = files.clone();
                async move { serve_content(&files, req.uri().path()) }
            })
        }
    };
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    Ok(HttpServer {
        addr,
        stop,
        task: Some(task),
    })
}

fn serve_content(files: &BTreeMap<String, String>, path: &str) -> Response<Body> {
    let found = files
        .get(path)
        .or_else(|| files.get(path.trim_start_matches('/')));
    let (status, body) = match found {
        Some(body) => (StatusCode::OK, Body::from(body.clone())),
        None => (StatusCode::NOT_FOUND, Body::from("404 page not found\n")),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Bind a TCP listener on the first free port in `min..=max`, starting at
/// an offset so concurrent builds spread out.
pub async fn bind_in_range(bind: IpAddr, min: u16, max: u16) -> Result<TcpListener, HttpError> {
    let (lo, hi) = (min.min(max), min.max(max));
    let span = u32::from(hi - lo) + 1;
    let start = std::process::id() % span;
    let mut last = std::io::Error::new(std::io::ErrorKind::AddrInUse, "empty port range");
    for i in 0..span {
        let port = lo + ((start + i) % span) as u16;
        match TcpListener::bind((bind, port)).await {
            Ok(l) => return Ok(l),
            Err(e) => last = e,
        }
    }
    Err(HttpError::NoFreePort {
        bind,
        min,
        max,
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn plan(content: HttpContent) -> HttpPlan {
        HttpPlan {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_min: 18000,
            port_max: 18999,
            content,
        }
    }

    #[tokio::test]
    async fn serves_http_content_and_404s_the_rest() {
        let files = BTreeMap::from([("/user-data".to_string(), "#cloud-config\n".to_string())]);
        let server = start(&plan(HttpContent::Files(files))).await.unwrap();
        let base = format!("http://{}", server.addr);
        let ok = reqwest::get(format!("{base}/user-data")).await.unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.text().await.unwrap(), "#cloud-config\n");
        let missing = reqwest::get(format!("{base}/meta-data")).await.unwrap();
        assert_eq!(missing.status(), 404);
        server.stop().await;
    }

    #[tokio::test]
    async fn serves_a_directory_without_escaping_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("preseed.cfg"), "d-i x\n").unwrap();
        let server = start(&plan(HttpContent::Directory(dir.path().into())))
            .await
            .unwrap();
        let base = format!("http://{}", server.addr);
        let body = reqwest::get(format!("{base}/preseed.cfg"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "d-i x\n");
        let escape = reqwest::get(format!("{base}/../etc/passwd")).await.unwrap();
        assert_ne!(escape.status(), 200);
        server.stop().await;
    }

    #[tokio::test]
    async fn takes_the_next_port_when_one_is_busy() {
        let first = bind_in_range(IpAddr::V4(Ipv4Addr::LOCALHOST), 18500, 18501)
            .await
            .unwrap();
        let second = bind_in_range(IpAddr::V4(Ipv4Addr::LOCALHOST), 18500, 18501)
            .await
            .unwrap();
        assert_ne!(
            first.local_addr().unwrap().port(),
            second.local_addr().unwrap().port()
        );
        let third = bind_in_range(IpAddr::V4(Ipv4Addr::LOCALHOST), 18500, 18501).await;
        assert!(matches!(third, Err(HttpError::NoFreePort { .. })));
    }

    #[tokio::test]
    async fn a_missing_directory_is_an_error() {
        let err = start(&plan(HttpContent::Directory("/nonexistent/kiln".into())))
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("/nonexistent/kiln"));
    }
}
