//! `http_server`: Packer's HTTP server for installers — `http_directory`,
//! or `http_content` rendered once its port is known; stopped when the
//! build ends. Its port is the `{{ .HTTPPort }}` of what comes after.

use std::collections::BTreeMap;
use std::path::Path;

use kiln_qemu::QemuConfig;
use kiln_qemu::placeholders::{self, TemplateData};

use super::HOST_FROM_GUEST;
use crate::http::{HttpContent, HttpPlan};
use crate::pipeline::{Pipeline, StepError};
use crate::step::StepId;

pub(super) struct HttpServer<'a> {
    pub cfg: &'a QemuConfig,
    pub cwd: &'a Path,
    pub public_key: Option<&'a str>,
}

/// The server's port (0: none) and the boot-time template data it completes.
pub(super) struct Http {
    pub port: u16,
    /// `HTTPIP`, `HTTPPort`, `Name`, `SSHPublicKey`.
    pub template_data: TemplateData,
}

impl HttpServer<'_> {
    pub async fn run(self, p: &mut Pipeline) -> Result<Http, StepError> {
        let cfg = self.cfg;
        let fail = |message: String| StepError::msg(StepId::HttpServer, message);
        let bind: std::net::IpAddr = cfg.http.bind_address.parse().map_err(|_| {
            fail(format!(
                "`http_bind_address` {:?} is not an IP address",
                cfg.http.bind_address
            ))
        })?;
        let base = TemplateData::new()
            .with("HTTPIP", HOST_FROM_GUEST)
            .with("Name", &cfg.vm_name)
            .with("SSHPublicKey", self.public_key.unwrap_or(""));
        if !cfg.http.enabled() {
            return Ok(Http {
                port: 0,
                template_data: base.with("HTTPPort", 0),
            });
        }
        let content = match &cfg.http.directory {
            Some(dir) => HttpContent::Directory(self.cwd.join(dir)),
            // Rendered once the port is known: an empty map for now.
            None => HttpContent::Files(Default::default()),
        };
        let plan = HttpPlan {
            bind,
            port_min: cfg.http.port_min,
            port_max: cfg.http.port_max,
            content,
        };
        let mut server = p
            .step(StepId::HttpServer, crate::http::start(&plan))
            .await?;
        if cfg.http.directory.is_none() {
            // Restart with the rendered content on the port just found.
            let port = server.port();
            server.stop().await;
            let data = base.clone().with("HTTPPort", port);
            let mut files = BTreeMap::new();
            for (path, body) in &cfg.http.content {
                let body = placeholders::render(body, &data)
                    .map_err(|e| fail(format!("`http_content` {path}: {e}")))?;
                let key = if path.starts_with('/') {
                    path.clone()
                } else {
                    format!("/{path}")
                };
                files.insert(key, body);
            }
            let plan = HttpPlan {
                bind,
                port_min: port,
                port_max: port,
                content: HttpContent::Files(files),
            };
            server = crate::http::start(&plan)
                .await
                .map_err(|e| StepError::failed(StepId::HttpServer, e))?;
        }
        let port = server.port();
        p.ev.say(format!("Starting HTTP server on port {port}"));
        let _ = p.defer("stop HTTP server", async move {
            server.stop().await;
            Ok(())
        });
        Ok(Http {
            port,
            template_data: base.with("HTTPPort", port),
        })
    }
}
