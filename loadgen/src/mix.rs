//! How a connection ends (its close mode), the weighted `--close-mix` and its seeded draw.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The ways a connection can end. Each has one cause the engine must record for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CloseMode {
    /// close() at a frame boundary after every reply.
    Fin,
    /// SO_LINGER {1, 0} and close(): an RST.
    Reset,
    /// A partial frame, then FIN.
    MidFrame,
    /// shutdown(SHUT_WR) right after the last request; read every reply, then EOF.
    HalfClose,
    /// A CLOSE frame (HTTP: `Connection: close`) right after the last request; read every
    /// reply, then EOF. The peer asked, so the engine records `peer_close`.
    CloseRequest,
    /// A frame of an unknown kind.
    BadFrame,
    /// Send nothing more and wait for the engine's idle timeout.
    Idle,
    /// Send two header bytes and wait for the engine's read timeout.
    Stall,
    /// `--hold`: idle after HELLO for the whole run, then close() like `fin`.
    Hold,
}

impl CloseMode {
    pub const ALL: [CloseMode; 9] = [
        CloseMode::Fin,
        CloseMode::Reset,
        CloseMode::MidFrame,
        CloseMode::HalfClose,
        CloseMode::CloseRequest,
        CloseMode::BadFrame,
        CloseMode::Idle,
        CloseMode::Stall,
        CloseMode::Hold,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            CloseMode::Fin => "fin",
            CloseMode::Reset => "reset",
            CloseMode::MidFrame => "mid-frame",
            CloseMode::HalfClose => "half-close",
            CloseMode::CloseRequest => "close-request",
            CloseMode::BadFrame => "bad-frame",
            CloseMode::Idle => "idle",
            CloseMode::Stall => "stall",
            CloseMode::Hold => "hold",
        }
    }

    /// The engine close-log cause this mode must produce.
    pub const fn expected_cause(self) -> &'static str {
        match self {
            CloseMode::Fin | CloseMode::HalfClose | CloseMode::Hold => "peer_fin",
            CloseMode::Reset => "peer_reset",
            CloseMode::MidFrame => "peer_fin_mid_frame",
            CloseMode::CloseRequest => "peer_close",
            CloseMode::BadFrame => "protocol_error",
            CloseMode::Idle => "idle_timeout",
            CloseMode::Stall => "read_timeout",
        }
    }

    /// Whether the client closes first (it then sees no FIN/RST from the engine).
    pub const fn client_closes(self) -> bool {
        matches!(self, CloseMode::Fin | CloseMode::Reset | CloseMode::Hold)
    }

    /// Whether the mode's last step goes right after the last request, before its replies.
    pub const fn ends_after_last_send(self) -> bool {
        matches!(self, CloseMode::HalfClose | CloseMode::CloseRequest)
    }
}

impl fmt::Display for CloseMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CloseMode {
    type Err = String;

    fn from_str(text: &str) -> Result<CloseMode, String> {
        CloseMode::ALL
            .into_iter()
            .filter(|mode| *mode != CloseMode::Hold)
            .find(|mode| mode.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<_> = CloseMode::ALL[..8].iter().map(|m| m.as_str()).collect();
                format!(
                    "unknown close mode `{text}` (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// Weights per close mode, e.g. `fin=5,reset=1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseMix {
    pub weights: Vec<(CloseMode, u32)>,
}

/// The sum of the weights is kept far from overflow.
pub const MIX_WEIGHT_MAX: u32 = 1_000_000;

impl CloseMix {
    /// Every connection ends with `fin`.
    pub fn fin_only() -> CloseMix {
        CloseMix {
            weights: vec![(CloseMode::Fin, 1)],
        }
    }

    fn total(&self) -> u64 {
        self.weights.iter().map(|&(_, w)| u64::from(w)).sum()
    }

    /// The mode of connection `index`: a pure function of (seed, index).
    pub fn draw(&self, seed: u64, index: u64) -> CloseMode {
        let total = self.total();
        assert!(total > 0, "a parsed mix has a positive weight");
        let mut pick = splitmix64(seed ^ splitmix64(index)) % total;
        for &(mode, weight) in &self.weights {
            if pick < u64::from(weight) {
                return mode;
            }
            pick -= u64::from(weight);
        }
        unreachable!("pick < total")
    }
}

impl FromStr for CloseMix {
    type Err = String;

    fn from_str(text: &str) -> Result<CloseMix, String> {
        let mut weights: Vec<(CloseMode, u32)> = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
            let mode: CloseMode = name.trim().parse()?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("weight `{weight}` of {mode} is not a whole number"))?;
            if weight > MIX_WEIGHT_MAX {
                return Err(format!(
                    "weight {weight} of {mode} exceeds {MIX_WEIGHT_MAX}"
                ));
            }
            if weights.iter().any(|&(m, _)| m == mode) {
                return Err(format!("{mode} appears twice"));
            }
            if weight > 0 {
                weights.push((mode, weight));
            }
        }
        if weights.is_empty() {
            return Err("the mix needs at least one mode with a positive weight".into());
        }
        Ok(CloseMix { weights })
    }
}

/// SplitMix64: a small, well-mixed, deterministic generator step.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_issue_example() {
        let mix: CloseMix =
            "fin=5,reset=1,mid-frame=1,half-close=1,close-request=1,bad-frame=1,idle=1,stall=1"
                .parse()
                .unwrap();
        assert_eq!(mix.weights.len(), 8);
        assert_eq!(mix.total(), 12);
    }

    #[test]
    fn rejects_bad_mixes() {
        for bad in [
            "",
            "fin=0",
            "nope=1",
            "fin=x",
            "fin=1,fin=2",
            "hold=1",
            "fin=2000000",
        ] {
            assert!(bad.parse::<CloseMix>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn draw_is_deterministic_and_covers_the_mix() {
        let mix: CloseMix = "fin=1,reset=1,idle=2".parse().unwrap();
        let first: Vec<_> = (0..400).map(|i| mix.draw(7, i)).collect();
        let again: Vec<_> = (0..400).map(|i| mix.draw(7, i)).collect();
        assert_eq!(first, again);
        let idle = first.iter().filter(|&&m| m == CloseMode::Idle).count();
        assert!((150..250).contains(&idle), "idle drawn {idle} times of 400");
        assert!(first.contains(&CloseMode::Fin) && first.contains(&CloseMode::Reset));
    }

    #[test]
    fn every_mode_names_a_cause() {
        for mode in CloseMode::ALL {
            assert!(!mode.expected_cause().is_empty());
        }
    }

    #[test]
    fn a_close_the_client_asks_for_is_peer_close() {
        // The CLOSE frame (HTTP: `Connection: close`) is the peer's request, not the server's
        // own decision (`local_close`), which no mode produces.
        assert_eq!(CloseMode::CloseRequest.expected_cause(), "peer_close");
        for mode in CloseMode::ALL {
            assert_ne!(mode.expected_cause(), "local_close", "{mode}");
            assert_ne!(mode.expected_cause(), "slow_consumer", "{mode}");
        }
    }
}
