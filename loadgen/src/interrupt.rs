//! Ctrl-C: the first SIGINT asks the run to stop and report what ran so far; a second one ends
//! the process at once with the same exit status (signal-hook's flag handlers: no `unsafe`
//! here, every unsafe block of the project stays in engine::sys).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::SIGINT;

use crate::report::EXIT_INTERRUPTED;

/// Whether SIGINT arrived, set by the handler.
#[derive(Debug)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Installs the handlers: the first SIGINT sets the flag, the next exits.
    pub fn install() -> io::Result<Interrupt> {
        let flag = Arc::new(AtomicBool::new(false));
        // Registered first, so it sees the flag before the first SIGINT sets it.
        signal_hook::flag::register_conditional_shutdown(
            SIGINT,
            i32::from(EXIT_INTERRUPTED),
            Arc::clone(&flag),
        )?;
        signal_hook::flag::register(SIGINT, Arc::clone(&flag))?;
        Ok(Interrupt(flag))
    }

    pub fn happened(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
