//! Resource patterns, concrete resources, and the segment automaton behind
//! both matching ([`ResourcePattern::matches`]) and containment
//! ([`ResourcePattern::is_subset_of`]).
//!
//! A resource is `/`-separated segments (`orders/eu/42`). A pattern segment is
//! a literal, `*` (exactly one segment) or `**` (**zero** or more segments:
//! `orders/**` matches `orders` itself as well as `orders/eu/42`). A pattern
//! is read as a nondeterministic automaton whose state `j` means "the first
//! `j` pattern segments are matched"; with at most [`MAX_SEGMENTS`] segments
//! the set of live states fits one `u64`, so matching is a few bit operations
//! per segment and never allocates.
//!
//! Containment is the same automaton run over the child pattern's hardest
//! resources; the argument is on [`ResourcePattern::is_subset_of`].

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::brief;
use crate::error::{Error, ErrorCode, Result};

/// Patterns and resources longer than this (bytes) are refused before
/// parsing, with `input_too_large`.
pub const MAX_RESOURCE_LEN: usize = 512;

/// The most segments a pattern or resource may have; keeps the automaton's
/// states (segments + 1) within one `u64`.
pub const MAX_SEGMENTS: usize = 32;

/// Bound on the containment search (pairs of child position and parent state
/// set). Patterns people write need a few dozen; a pathological pair that
/// exceeds it is answered "not a subset", which is the safe answer.
const SUBSET_SEARCH_BUDGET: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Seg {
    /// A literal segment, by byte range into the pattern text.
    Lit(u16, u16),
    /// `*`
    One,
    /// `**`
    Any,
}

/// A validated resource pattern such as `orders/*/items/**`.
///
/// Segments are separated by `/`; none is empty (no leading, trailing or
/// doubled `/`). A segment is `*` (any one segment), `**` (any number of
/// segments, including none) or a literal of visible ASCII characters
/// without `*`; `.` and `..` are refused so that no provider can read a
/// pattern as a path that climbs out of its prefix. At most
/// [`MAX_RESOURCE_LEN`] bytes and [`MAX_SEGMENTS`] segments. Serialized as
/// the string; parsed (and pre-split) once, when read.
#[derive(Clone)]
pub struct ResourcePattern {
    text: String,
    segs: Box<[Seg]>,
    /// Bit `j` set: segment `j` is `**` / `*` / a literal.
    any: u64,
    one: u64,
    lit: u64,
}

impl ResourcePattern {
    /// Parses and validates a pattern (`resource_pattern_invalid`, or
    /// `input_too_large` beyond [`MAX_RESOURCE_LEN`]).
    pub fn parse(pattern: &str) -> Result<ResourcePattern> {
        let mut segs = Vec::new();
        let (mut any, mut one, mut lit) = (0u64, 0u64, 0u64);
        scan(pattern, true, |j, seg, start| {
            let bit = 1u64 << j;
            segs.push(match seg {
                "**" => {
                    any |= bit;
                    Seg::Any
                }
                "*" => {
                    one |= bit;
                    Seg::One
                }
                // scan() bounds offsets by MAX_RESOURCE_LEN, far below u16::MAX.
                _ => {
                    lit |= bit;
                    Seg::Lit(start as u16, (start + seg.len()) as u16)
                }
            });
        })?;
        Ok(ResourcePattern {
            text: pattern.to_owned(),
            segs: segs.into(),
            any,
            one,
            lit,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the pattern has no `*` or `**`: it matches exactly one resource.
    pub fn is_concrete(&self) -> bool {
        self.any | self.one == 0
    }

    /// Whether the concrete `resource` matches this pattern. Never allocates.
    pub fn matches(&self, resource: &Resource<'_>) -> bool {
        let mut live = self.start();
        for seg in resource.segments() {
            live = self.step(live, Some(seg));
            if live == 0 {
                return false;
            }
        }
        self.accepts(live)
    }

    /// Whether every resource this pattern matches is matched by `parent`
    /// too: `a/*/c` ⊆ `a/**`, `a/**` ⊄ `a/*`, `**` ⊆ `**`, `**/*` ⊆ `*/**`.
    ///
    /// Decided exactly, not by lining up segments (which misses `**/*` ⊆
    /// `*/**`): the parent's automaton runs over the child's resources, with
    /// one observation making the infinite alphabet finite. On a literal the
    /// parent never names ("fresh"), the parent's next states are a subset of
    /// its next states on any other literal, and fewer live states accept
    /// less. So the child's hardest resources — the only ones to check — have
    /// a fresh literal where the child has `*` and a run of them where it has
    /// `**`; and a fresh run brings the parent to a fixed state set within
    /// `parent segments + 1` steps, so the search is finite. Resources have
    /// at least one segment, so `**` ⊆ `*/**` too. A pathological pair whose
    /// search exceeds an internal budget of 4096 steps is answered `false`,
    /// the safe answer for an attenuation check.
    pub fn is_subset_of(&self, parent: &ResourcePattern) -> bool {
        // (child position, parent state set, whether a segment was read yet).
        // Resources have at least one segment, so the empty word is no
        // counterexample: that is why `**` ⊆ `*/**`.
        let mut todo: Vec<(usize, u64, bool)> = vec![(0, parent.start(), false)];
        let mut seen: Vec<(usize, u64, bool)> = Vec::new();
        while let Some((i, live, read)) = todo.pop() {
            // Every child suffix matches some words; a dead parent matches none.
            if live == 0 {
                return false;
            }
            // A set containing a seen one accepts at least as much: skip it.
            if seen
                .iter()
                .any(|&(j, s, r)| j == i && r == read && s & live == s)
            {
                continue;
            }
            if seen.len() >= SUBSET_SEARCH_BUDGET {
                return false;
            }
            seen.push((i, live, read));
            match self.segs.get(i) {
                None if read && !parent.accepts(live) => return false,
                None => {}
                Some(Seg::Lit(..)) => {
                    todo.push((i + 1, parent.step(live, Some(self.lit_text(i))), true))
                }
                Some(Seg::One) => todo.push((i + 1, parent.step(live, None), true)),
                Some(Seg::Any) => {
                    todo.push((i + 1, live, read));
                    todo.push((i, parent.step(live, None), true));
                }
            }
        }
        true
    }

    fn lit_text(&self, j: usize) -> &str {
        match self.segs.get(j) {
            Some(&Seg::Lit(start, end)) => self
                .text
                .get(usize::from(start)..usize::from(end))
                .unwrap_or(""),
            _ => "",
        }
    }

    /// Adds the states reachable by letting `**` segments match nothing.
    fn close(&self, mut live: u64) -> u64 {
        loop {
            let next = live | ((live & self.any) << 1);
            if next == live {
                return live;
            }
            live = next;
        }
    }

    fn start(&self) -> u64 {
        self.close(1)
    }

    /// Reads one segment; `None` is a literal this pattern never mentions.
    fn step(&self, live: u64, seg: Option<&str>) -> u64 {
        let mut next = (live & self.any) | ((live & self.one) << 1);
        if let Some(seg) = seg {
            let mut lits = live & self.lit;
            while lits != 0 {
                let j = lits.trailing_zeros() as usize;
                lits &= lits - 1;
                if self.lit_text(j) == seg {
                    next |= 1 << (j + 1);
                }
            }
        }
        self.close(next)
    }

    fn accepts(&self, live: u64) -> bool {
        (live >> self.segs.len()) & 1 == 1
    }
}

/// Walks the segments of `s`, checking the shared rules, and hands each to
/// `seg(index, text, byte offset)`.
fn scan(s: &str, wildcards: bool, mut seg: impl FnMut(usize, &str, usize)) -> Result<()> {
    let what = if wildcards {
        "resource pattern"
    } else {
        "resource"
    };
    if s.len() > MAX_RESOURCE_LEN {
        return Err(Error::new(
            ErrorCode::InputTooLarge,
            format!(
                "a {what} has at most {MAX_RESOURCE_LEN} bytes, not {}",
                s.len()
            ),
        ));
    }
    let invalid = |why: String| {
        Error::new(
            ErrorCode::ResourcePatternInvalid,
            format!("{what} {}: {why}", brief(s)),
        )
    };
    if s.is_empty() {
        return Err(invalid("it is empty".into()));
    }
    let mut start = 0;
    for (j, text) in s.split('/').enumerate() {
        if j >= MAX_SEGMENTS {
            return Err(invalid(format!("more than {MAX_SEGMENTS} segments")));
        }
        let n = j + 1;
        match text {
            "" => {
                return Err(invalid(format!(
                    "segment {n} is empty (leading, trailing or doubled '/')"
                )));
            }
            "." | ".." => {
                return Err(invalid(format!(
                    "segment {n} is {text:?}, which could climb a path"
                )));
            }
            "*" | "**" if !wildcards => {
                return Err(invalid(format!(
                    "segment {n} is a wildcard; a requested resource is concrete"
                )));
            }
            "*" | "**" => {}
            _ if text.contains('*') => {
                return Err(invalid(format!("segment {n}: '*' must be a whole segment")));
            }
            _ if !text.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err(invalid(format!(
                    "segment {n} has characters other than visible ASCII"
                )));
            }
            _ => {}
        }
        seg(j, text, start);
        start += text.len() + 1;
    }
    Ok(())
}

impl PartialEq for ResourcePattern {
    fn eq(&self, other: &Self) -> bool {
        // Everything else is derived from the text.
        self.text == other.text
    }
}

impl Eq for ResourcePattern {}

impl std::hash::Hash for ResourcePattern {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl fmt::Debug for ResourcePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ResourcePattern").field(&self.text).finish()
    }
}

impl fmt::Display for ResourcePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for ResourcePattern {
    type Err = Error;
    fn from_str(s: &str) -> Result<ResourcePattern> {
        ResourcePattern::parse(s)
    }
}

impl Serialize for ResourcePattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for ResourcePattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        ResourcePattern::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for ResourcePattern {
    fn schema_name() -> Cow<'static, str> {
        "ResourcePattern".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_RESOURCE_LEN,
            // Visible ASCII without '*' and '/' is [!-)+-.0-~].
            "pattern": r"^([!-)+-.0-~]+|\*\*?)(/([!-)+-.0-~]+|\*\*?))*$",
            "description": "Resources this capability covers: segments separated by '/', each a literal, \
                            '*' (any one segment) or '**' (any number of segments, including none), \
                            e.g. \"orders/*/items/**\". At most 32 segments; no '.' or '..' segments.",
        })
    }
}

/// A concrete resource named by a request, e.g. `orders/eu/42`: the rules of
/// [`ResourcePattern`] without wildcards. Borrowed, so checking a request's
/// resource does not allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Resource<'a>(&'a str);

impl<'a> Resource<'a> {
    /// Checks a requested resource (`resource_pattern_invalid` for a
    /// wildcard or a malformed segment, `input_too_large`).
    pub fn parse(resource: &'a str) -> Result<Resource<'a>> {
        scan(resource, false, |_, _, _| {})?;
        Ok(Resource(resource))
    }

    /// The resource as given.
    pub fn as_str(&self) -> &'a str {
        self.0
    }

    /// Its segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.0.split('/')
    }
}

impl fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
