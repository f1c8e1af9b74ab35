//! A table of connections with reused slots: the slot index goes into user_data.

use std::ops::{Index, IndexMut};

#[derive(Debug)]
pub struct Slots<T> {
    entries: Vec<Option<T>>,
    free: Vec<usize>,
    len: usize,
}

impl<T> Slots<T> {
    pub fn new() -> Slots<T> {
        Slots {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot the next insert will use.
    pub fn next_key(&self) -> usize {
        self.free.last().copied().unwrap_or(self.entries.len())
    }

    pub fn insert(&mut self, value: T) -> usize {
        let key = match self.free.pop() {
            Some(key) => {
                assert!(self.entries[key].is_none(), "free slot {key} is taken");
                self.entries[key] = Some(value);
                key
            }
            None => {
                self.entries.push(Some(value));
                self.entries.len() - 1
            }
        };
        self.len += 1;
        key
    }

    pub fn remove(&mut self, key: usize) -> T {
        let value = self.entries[key].take().expect("remove of an empty slot");
        self.free.push(key);
        self.len -= 1;
        value
    }

    /// One past the highest slot ever used: keys are below it.
    pub fn key_bound(&self) -> usize {
        self.entries.len()
    }

    pub fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        self.entries.get_mut(key).and_then(Option::as_mut)
    }

    pub fn get(&self, key: usize) -> Option<&T> {
        self.entries.get(key).and_then(Option::as_ref)
    }

    pub fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(key, entry)| entry.as_ref().map(|value| (key, value)))
    }

    pub fn keys(&self) -> Vec<usize> {
        self.iter().map(|(key, _)| key).collect()
    }
}

impl<T> Index<usize> for Slots<T> {
    type Output = T;

    fn index(&self, key: usize) -> &T {
        self.entries[key].as_ref().expect("empty slot")
    }
}

impl<T> IndexMut<usize> for Slots<T> {
    fn index_mut(&mut self, key: usize) -> &mut T {
        self.entries[key].as_mut().expect("empty slot")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused() {
        let mut slots = Slots::new();
        let a = slots.insert('a');
        let b = slots.insert('b');
        assert_eq!(slots.len(), 2);
        assert_eq!(slots.remove(a), 'a');
        assert_eq!(slots.next_key(), a);
        assert_eq!(slots.insert('c'), a);
        assert_eq!(slots[b], 'b');
        assert_eq!(slots.keys(), vec![a, b]);
        assert!(slots.get(7).is_none());
    }
}
