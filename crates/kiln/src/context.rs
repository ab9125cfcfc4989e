//! What a command runs with: its [`Settings`] and the process's one async
//! runtime, built the first time a command needs it.

use std::cell::OnceCell;

use tokio::runtime::Runtime;

use crate::exit::Exit;
use crate::render;
use crate::settings::Settings;

pub struct Context {
    pub settings: Settings,
    runtime: OnceCell<Runtime>,
}

impl Context {
    pub fn new(settings: Settings) -> Context {
        Context {
            settings,
            runtime: OnceCell::new(),
        }
    }

    /// The runtime (multi-threaded: builds run side by side, and a signal
    /// watch runs while the main thread writes an artifact).
    pub fn runtime(&self) -> Result<&Runtime, Exit> {
        if let Some(r) = self.runtime.get() {
            return Ok(r);
        }
        match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(r) => Ok(self.runtime.get_or_init(|| r)),
            Err(e) => {
                render::error(&format!("cannot start the async runtime: {e}"), None);
                Err(Exit::Failed)
            }
        }
    }
}
