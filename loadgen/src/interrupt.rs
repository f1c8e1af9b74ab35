//! Ctrl-C and SIGTERM (e.g. `timeout`, `kill`): the first of either asks the run to stop and
//! report what ran so far; a second one (of either) ends the process at once with the same exit
//! status (signal-hook's flag handlers: no `unsafe` here, every unsafe block of the project
//! stays in engine::sys).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::report::EXIT_INTERRUPTED;

/// The signals that stop a run with a partial report, treated alike.
pub const STOP_SIGNALS: [i32; 2] = [SIGINT, SIGTERM];

/// Whether SIGINT or SIGTERM arrived, set by the handler.
#[derive(Debug)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Installs the handlers: the first SIGINT or SIGTERM sets the flag, the next exits.
    pub fn install() -> io::Result<Interrupt> {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in STOP_SIGNALS {
            // Registered first, so it sees the flag before the first signal sets it.
            signal_hook::flag::register_conditional_shutdown(
                signal,
                i32::from(EXIT_INTERRUPTED),
                Arc::clone(&flag),
            )?;
        }
        for signal in STOP_SIGNALS {
            signal_hook::flag::register(signal, Arc::clone(&flag))?;
        }
        Ok(Interrupt(flag))
    }

    pub fn happened(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
