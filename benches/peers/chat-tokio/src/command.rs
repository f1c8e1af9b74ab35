//! The chat protocol's requests: one line in, one [`Command`] or [`Refusal`] out (no I/O).
//!
//! A line is what came before `\n`, with one `\r` before it already removed by the caller. The
//! command word is exact and upper-case; the words after it are split at single spaces. A room or
//! nick is 1..=[`NAME_LEN_MAX`] bytes of `[A-Za-z0-9_-]`; a missing one is a bad (empty) name.

/// The longest room or nick, in bytes.
pub const NAME_LEN_MAX: usize = 32;

/// One request.
#[derive(Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// `JOIN <room> <nick>`.
    Join { room: &'a str, nick: &'a str },
    /// `SAY <room> <text...>`: the text is every byte after the space that ends the room (empty
    /// for `SAY <room>`).
    Say { room: &'a str, text: &'a [u8] },
    /// `LEAVE <room>`.
    Leave { room: &'a str },
    /// `QUIT`.
    Quit,
}

/// A line that is not a valid request, and the reply it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A room or nick outside `[A-Za-z0-9_-]{1,32}`.
    BadName,
    /// Any other line.
    Unknown,
}

impl Refusal {
    /// The reply line, `\n` included.
    pub fn reply(self) -> &'static [u8] {
        match self {
            Refusal::BadName => b"ERR bad name\n",
            Refusal::Unknown => b"ERR unknown command\n",
        }
    }
}

/// Parses one line (without its `\r\n` or `\n`).
pub fn parse(line: &[u8]) -> Result<Command<'_>, Refusal> {
    let (word, rest) = split_word(line);
    match (word, rest) {
        (b"JOIN", Some(rest)) => {
            let (room, nick) = split_word(rest);
            Ok(Command::Join {
                room: name(room)?,
                nick: name(nick.unwrap_or_default())?,
            })
        }
        (b"SAY", Some(rest)) => {
            let (room, text) = split_word(rest);
            Ok(Command::Say {
                room: name(room)?,
                text: text.unwrap_or_default(),
            })
        }
        (b"LEAVE", Some(room)) => Ok(Command::Leave { room: name(room)? }),
        (b"JOIN" | b"SAY" | b"LEAVE", None) => Err(Refusal::BadName),
        (b"QUIT", None) => Ok(Command::Quit),
        _ => Err(Refusal::Unknown),
    }
}

/// Splits at the first space: the word before it, and what follows it (`None`: no space).
fn split_word(bytes: &[u8]) -> (&[u8], Option<&[u8]>) {
    match bytes.iter().position(|&b| b == b' ') {
        Some(at) => (&bytes[..at], Some(&bytes[at + 1..])),
        None => (bytes, None),
    }
}

/// A valid room or nick (ASCII, so also a `str`).
fn name(bytes: &[u8]) -> Result<&str, Refusal> {
    let valid = (1..=NAME_LEN_MAX).contains(&bytes.len())
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(Refusal::BadName);
    }
    Ok(std::str::from_utf8(bytes).expect("a valid name is ASCII"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_shape() {
        let long = "r".repeat(NAME_LEN_MAX);
        let too_long = "r".repeat(NAME_LEN_MAX + 1);
        let join_long = format!("JOIN {long} n");
        let join_too_long = format!("JOIN {too_long} n");
        let rows: &[(&[u8], Result<Command, Refusal>)] = &[
            (
                b"JOIN lobby al-i_3",
                Ok(Command::Join {
                    room: "lobby",
                    nick: "al-i_3",
                }),
            ),
            (
                join_long.as_bytes(),
                Ok(Command::Join {
                    room: &long,
                    nick: "n",
                }),
            ),
            (join_too_long.as_bytes(), Err(Refusal::BadName)),
            (b"JOIN lobby", Err(Refusal::BadName)),
            (b"JOIN lobby ", Err(Refusal::BadName)),
            (b"JOIN", Err(Refusal::BadName)),
            (b"JOIN  lobby al", Err(Refusal::BadName)),
            (b"JOIN lobby al bo", Err(Refusal::BadName)),
            (b"JOIN lob.by al", Err(Refusal::BadName)),
            (
                b"SAY lobby hello  world",
                Ok(Command::Say {
                    room: "lobby",
                    text: b"hello  world",
                }),
            ),
            (
                b"SAY lobby",
                Ok(Command::Say {
                    room: "lobby",
                    text: b"",
                }),
            ),
            (
                b"SAY lobby ",
                Ok(Command::Say {
                    room: "lobby",
                    text: b"",
                }),
            ),
            (b"SAY", Err(Refusal::BadName)),
            (b"SAY l\xffbby x", Err(Refusal::BadName)),
            (
                b"SAY lobby \xff\x00",
                Ok(Command::Say {
                    room: "lobby",
                    text: b"\xff\x00",
                }),
            ),
            (b"LEAVE lobby", Ok(Command::Leave { room: "lobby" })),
            (b"LEAVE lobby x", Err(Refusal::BadName)),
            (b"LEAVE", Err(Refusal::BadName)),
            (b"QUIT", Ok(Command::Quit)),
            (b"QUIT now", Err(Refusal::Unknown)),
            (b"quit", Err(Refusal::Unknown)),
            (b"", Err(Refusal::Unknown)),
            (b"JOINED lobby al", Err(Refusal::Unknown)),
            (b" JOIN lobby al", Err(Refusal::Unknown)),
        ];
        for (line, expected) in rows {
            assert_eq!(
                &parse(line),
                expected,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
