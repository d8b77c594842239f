//! The command's rendering of arbitrary regions, for the `cli_render` fuzz target
//! (`fuzz/fuzz_targets/cli_render.rs`) and its corpus replay (`tests/fuzz_corpus.rs`), and
//! the forged regions the command's tests plant.
//!
//! [`render_arbitrary_descriptor`] plants a region in `/dev/shm` whose header is valid and
//! whose descriptor is the fuzzer's bytes, and runs what `inspect` (text and JSON), `watch`
//! and `header` do on it (and `get` and `watch`'s comparison by kind, for a region of format
//! version 2: bit 7 of the input's second byte). It panics when the command misbehaves: a panic
//! inside it, a control
//! character in its text output, JSON that does not parse, or a C header that is not the
//! shape `shmstore header` writes ([`check_c_header`]). A hang is the fuzzer's timeout.

use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use shmstore::inspect::Inspector;
use shmstore::{Location, Shm};

use crate::{cheader, fields, inspect};

/// Where the header fields a forged region sets are (`FORMAT.md`, "Header").
mod at {
    pub const FORMAT_VERSION: usize = 8;
    pub const FLAGS: usize = 20;
    pub const PAYLOAD_OFFSET: usize = 32;
    pub const PAYLOAD_SIZE: usize = 40;
    pub const PAYLOAD_ALIGN: usize = 48;
    pub const REGION_SIZE: usize = 56;
    pub const DESCRIPTOR_LEN: usize = 72;
    pub const KIND: usize = 104;
    pub const QUEUE_FIELDS: std::ops::Range<usize> = 108..128;
    pub const VERSION: usize = 128;
    pub const VERSIONS_OFFSET: usize = 176;
    pub const VERSIONS_LEN: usize = 184;
    pub const HEADER_SIZE: usize = 256;
}

/// A fresh name `shmstore-fuzz-cli-<pid>-<n>`.
fn unique_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "shmstore-fuzz-cli-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Relaxed)
    )
}

/// A ready header as this library writes it (magic, format, mutex, boot id, creator), taken
/// from a real region made and removed on the spot.
fn template_header() -> Vec<u8> {
    let name = unique_name();
    let shm = Shm::<u8>::options()
        .unlink_on_drop(true)
        .create(&name, 0)
        .expect("a fresh region for the template header");
    let mut header = vec![0u8; at::HEADER_SIZE];
    std::fs::File::open(format!("/dev/shm/{name}"))
        .and_then(|mut f| f.read_exact(&mut header))
        .expect("the template region is readable");
    drop(shm);
    header
}

fn align_up(n: u64, align: u64) -> u64 {
    n.div_ceil(align) * align
}

/// The bytes of a ready value region (default mode: two copies of `payload`) whose
/// descriptor is `descriptor`, whatever it says: what a hostile peer can plant. `align` is
/// the stored `payload_align` (a power of two up to 4096).
pub fn forged_region(descriptor: &[u8], payload: &[u8], align: u64) -> Vec<u8> {
    forged_region_of_version(descriptor, payload, align, 1)
}

/// [`forged_region`] with the header's `format_version` set to `format_version`: 2 for a
/// descriptor that ends with a kinds table ([`encode_kinds`]).
pub fn forged_region_of_version(
    descriptor: &[u8],
    payload: &[u8],
    align: u64,
    format_version: u32,
) -> Vec<u8> {
    forged_region_with_versions(descriptor, &[], payload, align, format_version)
}

/// [`forged_region_of_version`] with a versions table of these bytes (`FORMAT.md`, "Versions
/// table"; none if empty) right after the descriptor, where a migrated region has it, and the
/// header's `versions_offset` and `versions_len` pointing at it.
pub fn forged_region_with_versions(
    descriptor: &[u8],
    versions: &[u8],
    payload: &[u8],
    align: u64,
    format_version: u32,
) -> Vec<u8> {
    let put = |bytes: &mut Vec<u8>, at: usize, value: u64| {
        bytes[at..at + 8].copy_from_slice(&value.to_ne_bytes());
    };
    let mut bytes = template_header();
    let copy_align = align.max(64);
    let payload_size = payload.len() as u64;
    let descriptor_end = (at::HEADER_SIZE + descriptor.len()) as u64;
    let (versions_offset, versions_end) = if versions.is_empty() {
        (0, descriptor_end)
    } else {
        let offset = align_up(descriptor_end, 8);
        (offset, offset + versions.len() as u64)
    };
    let payload_offset = align_up(versions_end, copy_align);
    let second = align_up(payload_offset + payload_size, copy_align);
    let region_size = second + payload_size;
    bytes[at::FORMAT_VERSION..at::FORMAT_VERSION + 4]
        .copy_from_slice(&format_version.to_ne_bytes());
    bytes[at::FLAGS..at::FLAGS + 4].copy_from_slice(&0u32.to_ne_bytes());
    bytes[at::KIND..at::KIND + 4].copy_from_slice(&1u32.to_ne_bytes()); // a value
    bytes[at::QUEUE_FIELDS].fill(0);
    put(&mut bytes, at::PAYLOAD_OFFSET, payload_offset);
    put(&mut bytes, at::PAYLOAD_SIZE, payload_size);
    put(&mut bytes, at::PAYLOAD_ALIGN, align);
    put(&mut bytes, at::REGION_SIZE, region_size);
    put(&mut bytes, at::DESCRIPTOR_LEN, descriptor.len() as u64);
    put(&mut bytes, at::VERSION, 0);
    put(&mut bytes, at::VERSIONS_OFFSET, versions_offset);
    put(&mut bytes, at::VERSIONS_LEN, versions.len() as u64);
    bytes.extend_from_slice(descriptor);
    if !versions.is_empty() {
        bytes.resize(versions_offset as usize, 0);
        bytes.extend_from_slice(versions);
    }
    bytes.resize(payload_offset as usize, 0);
    bytes.extend_from_slice(payload);
    bytes.resize(second as usize, 0);
    bytes.extend_from_slice(payload);
    bytes
}

/// Publishes version `version` (as the API counts versions) of a region planted with
/// [`forged_region`] at `path`, as a writer would: stores the even raw word `2 * version`
/// (FORMAT.md), without the futex wake (a read-only watcher re-checks on its own).
pub fn publish_version(path: &str, version: u64) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.seek(SeekFrom::Start(at::VERSION as u64))?;
    file.write_all(&version.wrapping_mul(2).to_ne_bytes())
}

/// One field of a descriptor as [`encode_descriptor`] writes it: its path, primitive code,
/// offset, and `(count, stride)` per dimension.
pub type ForgedField<'a> = (&'a str, u32, u64, &'a [(u64, u64)]);

/// An encoded descriptor (`FORMAT.md`, "Type descriptor"): the type name and its fields.
pub fn encode_descriptor(type_name: &str, fields: &[ForgedField<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let put_str = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u32).to_ne_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    put_str(&mut out, type_name);
    out.extend_from_slice(&(fields.len() as u32).to_ne_bytes());
    for (path, primitive, offset, dims) in fields {
        put_str(&mut out, path);
        out.extend_from_slice(&primitive.to_ne_bytes());
        out.extend_from_slice(&offset.to_ne_bytes());
        out.extend_from_slice(&(dims.len() as u32).to_ne_bytes());
        for (count, stride) in *dims {
            out.extend_from_slice(&count.to_ne_bytes());
            out.extend_from_slice(&stride.to_ne_bytes());
        }
    }
    out
}

/// One entry of a kinds table as [`encode_kinds`] writes it: the path, the kind code (1 text,
/// 2 flag, 3 optional, 4 timestamp, 5 enum, 6 list), the capacity, the enum's name and its
/// variants.
pub type ForgedKind<'a> = (&'a str, u32, u64, &'a str, &'a [(&'a str, i128)]);

/// A kinds table (`FORMAT.md`, "Field kinds (format version 2)"), to append to
/// [`encode_descriptor`]'s bytes for a format version 2 region.
pub fn encode_kinds(kinds: &[ForgedKind<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let put_str = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u32).to_ne_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    out.extend_from_slice(&(kinds.len() as u32).to_ne_bytes());
    for (path, code, capacity, enum_name, variants) in kinds {
        put_str(&mut out, path);
        out.extend_from_slice(&code.to_ne_bytes());
        out.extend_from_slice(&capacity.to_ne_bytes());
        put_str(&mut out, enum_name);
        out.extend_from_slice(&(variants.len() as u32).to_ne_bytes());
        for (name, value) in *variants {
            put_str(&mut out, name);
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    out
}

/// One entry of a versions table as [`encode_versions`] writes it: the fingerprint, the format
/// version and the encoded descriptor ([`encode_descriptor`], with [`encode_kinds`] after it
/// for format version 2).
pub type ForgedVersion<'a> = (u64, u32, &'a [u8]);

/// A versions table (`FORMAT.md`, "Versions table"), for [`forged_region_with_versions`].
pub fn encode_versions(versions: &[ForgedVersion<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(versions.len() as u32).to_ne_bytes());
    for (fingerprint, format_version, descriptor) in versions {
        out.extend_from_slice(&fingerprint.to_ne_bytes());
        out.extend_from_slice(&format_version.to_ne_bytes());
        out.extend_from_slice(&(descriptor.len() as u32).to_ne_bytes());
        out.extend_from_slice(descriptor);
    }
    out
}

/// Removes the object at this path when dropped, also while unwinding.
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Panics if `text` has a control character other than a line break: the command's text
/// output goes to terminals.
fn assert_terminal_safe(what: &str, text: &str) {
    if let Some(c) = text
        .chars()
        .find(|&c| c != '\n' && crate::failure::unsafe_for_terminals(c))
    {
        panic!("{what} has the raw character {c:?}:\n{text}");
    }
}

/// Plants a region whose descriptor is `data` after two bytes that choose the payload's size
/// and alignment (bits 0 to 2 of the second; its bit 7 chooses format version 2), and runs
/// `inspect` (text and JSON), `watch`'s comparison and `header` on
/// it. Returns the C header, if the command wrote one, for the replay test to compile.
///
/// # Panics
///
/// When the command misbehaves (see the module documentation).
pub fn render_arbitrary_descriptor(data: &[u8]) -> Option<String> {
    let (choice, descriptor) = data.split_at(data.len().min(2));
    let size = 1 + usize::from(choice.first().copied().unwrap_or(0));
    let shape = choice.get(1).copied().unwrap_or(0);
    let align = 1u64 << (shape % 8);
    // Bit 7: format version 2, so that a descriptor with a kinds table is decoded by kind.
    let format_version = if shape & 0x80 != 0 { 2 } else { 1 };
    let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let name = unique_name();
    let path = format!("/dev/shm/{name}");
    std::fs::write(
        &path,
        forged_region_of_version(descriptor, &payload, align, format_version),
    )
    .expect("/dev/shm is writable");
    let _unlink = Unlink(path);

    for as_json in [false, true] {
        let mut out = Vec::new();
        match inspect::run(&name, as_json, fields::DEFAULT_MAX_ELEMENTS, &mut out) {
            Ok(()) => {
                let text = String::from_utf8(out).expect("inspect writes UTF-8");
                assert_terminal_safe("inspect", &text);
                if as_json {
                    serde_json::from_str::<serde_json::Value>(&text)
                        .expect("inspect --json is JSON");
                }
            }
            Err(crate::failure::Failure::Message(message)) => {
                assert_terminal_safe("an error", &crate::failure::terminal(&message));
            }
            Err(_) => {}
        }
    }
    for as_json in [false, true] {
        let mut out = Vec::new();
        match crate::get::run(&name, &[], as_json, &mut out) {
            Ok(()) | Err(crate::failure::Failure::Reported) => {
                let text = String::from_utf8(out).expect("get writes UTF-8");
                assert_terminal_safe("get", &text);
                if as_json {
                    serde_json::from_str::<serde_json::Value>(&text).expect("get --json is JSON");
                }
            }
            Err(crate::failure::Failure::Message(message)) => {
                assert_terminal_safe("an error", &crate::failure::terminal(&message));
            }
            Err(_) => {}
        }
    }
    let view = match Inspector::open(name.as_str()) {
        Ok(view) => view,
        Err(e) => {
            assert_terminal_safe("an error", &e.to_string());
            return None;
        }
    };
    let changed: Vec<u8> = payload.iter().map(|b| !b).collect();
    for line in fields::changes(&view, &payload, &changed, fields::DEFAULT_MAX_ELEMENTS) {
        assert_terminal_safe("watch", &line);
    }
    if crate::values::has_kinds(&view) {
        for line in
            crate::values::changes(&view, &[], &payload, &changed, fields::DEFAULT_MAX_ELEMENTS)
        {
            assert_terminal_safe("watch", &line);
        }
    }
    match cheader::generate(&Location::Named(name.clone()), &view) {
        Ok(header) => {
            if let Err(why) = check_c_header(&header) {
                panic!("the generated header is not the shape shmstore writes: {why}\n{header}");
            }
            Some(header)
        }
        Err(crate::failure::Failure::Message(message)) => {
            assert_terminal_safe("an error", &message);
            None
        }
        Err(_) => None,
    }
}

/// One token of C, as [`check_c_header`] sees it.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Number,
    Str,
    Punct(char),
}

/// The tokens of one line of C outside comments, or why the line is not plain C: a byte
/// that is not printable ASCII, a comment or string literal not closed on its line.
fn tokens(line: &str) -> Result<Vec<Token>, String> {
    if let Some(c) = line.chars().find(|c| !(*c == ' ' || c.is_ascii_graphic())) {
        return Err(format!("the character {c:?} in `{line}`"));
    }
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c == ' ' {
            i += 1;
        } else if line[i..].starts_with("/*") {
            let end = line[i + 2..]
                .find("*/")
                .ok_or_else(|| format!("a comment not closed on its line: `{line}`"))?;
            i += 2 + end + 2;
        } else if c == '"' {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err(format!("a string not closed on its line: `{line}`")),
                    Some(b'\\') => i += 2,
                    Some(b'"') => break,
                    Some(_) => i += 1,
                }
            }
            i += 1;
            out.push(Token::Str);
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push(Token::Ident(line[start..i].to_string()));
        } else if c.is_ascii_digit() {
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
            out.push(Token::Number);
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    Ok(out)
}

/// Whether `tokens` spell `shape`: a space-separated pattern where `I` is any identifier,
/// `N` a number, `S` a string literal, `T` a type (an identifier, or `unsigned __int128`),
/// `D` a member designator (`a[0].b`), `[N]*` any number of array suffixes, `A` an optional
/// `__attribute__((packed, aligned(N)))`, and anything else itself.
fn spells(tokens: &[Token], shape: &str) -> bool {
    fn ident(t: Option<&Token>) -> bool {
        matches!(t, Some(Token::Ident(_)))
    }
    fn is(t: Option<&Token>, word: &str) -> bool {
        match t {
            Some(Token::Ident(i)) => i == word,
            Some(Token::Punct(p)) => word.len() == 1 && word.starts_with(*p),
            _ => false,
        }
    }
    let mut i = 0;
    for part in shape.split(' ').filter(|part| !part.is_empty()) {
        match part {
            "I" if ident(tokens.get(i)) => i += 1,
            "N" if tokens.get(i) == Some(&Token::Number) => i += 1,
            "S" if tokens.get(i) == Some(&Token::Str) => i += 1,
            "T" => {
                if is(tokens.get(i), "unsigned") && is(tokens.get(i + 1), "__int128") {
                    i += 2;
                } else if ident(tokens.get(i)) {
                    i += 1;
                } else {
                    return false;
                }
            }
            "[N]*" => {
                while is(tokens.get(i), "[")
                    && tokens.get(i + 1) == Some(&Token::Number)
                    && is(tokens.get(i + 2), "]")
                {
                    i += 3;
                }
            }
            "D" => loop {
                if !ident(tokens.get(i)) {
                    return false;
                }
                i += 1;
                while is(tokens.get(i), "[")
                    && tokens.get(i + 1) == Some(&Token::Number)
                    && is(tokens.get(i + 2), "]")
                {
                    i += 3;
                }
                if !is(tokens.get(i), ".") {
                    break;
                }
                i += 1;
            },
            "A" => {
                if is(tokens.get(i), "__attribute__") {
                    i += 1;
                    for p in ["(", "("] {
                        if !is(tokens.get(i), p) {
                            return false;
                        }
                        i += 1;
                    }
                    loop {
                        if is(tokens.get(i), "packed") {
                            i += 1;
                        } else if is(tokens.get(i), "aligned")
                            && is(tokens.get(i + 1), "(")
                            && tokens.get(i + 2) == Some(&Token::Number)
                            && is(tokens.get(i + 3), ")")
                        {
                            i += 4;
                        } else {
                            return false;
                        }
                        if !is(tokens.get(i), ",") {
                            break;
                        }
                        i += 1;
                    }
                    for p in [")", ")"] {
                        if !is(tokens.get(i), p) {
                            return false;
                        }
                        i += 1;
                    }
                }
            }
            word if is(tokens.get(i), word) => i += 1,
            _ => return false,
        }
    }
    i == tokens.len()
}

/// The shapes of the lines `shmstore header` writes around its fixed helpers: the guard, the
/// type's `#define`s, struct definitions and their assertions.
const GENERATED_SHAPES: &[&str] = &[
    "",
    "# ifndef I",
    "# define I",
    "# endif",
    "# define I S",
    "# define I N",
    "# define I I",
    "# define I I ( N )",
    "# define I ( ( I ) N )",
    "typedef struct A I {",
    "T I [N]* ;",
    "} I ;",
    "_Static_assert ( offsetof ( I , D ) = = N , S ) ;",
    "_Static_assert ( sizeof ( I ) = = N , S ) ;",
    "_Static_assert ( sizeof ( I ) = = I , S ) ;",
    "_Static_assert ( _Alignof ( I ) = = N , S ) ;",
    "typedef I I ;",
    "# pragma push_macro ( S )",
    "# pragma pop_macro ( S )",
    "# undef I",
    // Typed accessors of field kinds (ckinds.rs).
    concat!(
        "static inline const char * I ( const I * I , uint32_t * I ) ",
        "{ return I ( I - > D , I - > D , N , I ) ; }"
    ),
    concat!(
        "static inline int I ( I * I , const char * I , size_t I ) ",
        "{ return I ( I - > D , I - > D , N , I , I ) ; }"
    ),
    "static inline bool I ( const I * I ) { return I - > D ! = N ; }",
    "static inline int64_t I ( const I * I ) { return I - > D ; }",
    "static inline int64_t I ( const I * I ) { return ( int64_t ) I - > D ; }",
    "enum I {",
    "I = N ,",
    "I = - N ,",
    "} ;",
];

/// The oracle of the `cli_render` target: `header` is what `shmstore header` writes, with
/// region text only inside comments and string literals. Its first lines are one block
/// comment; the fixed helpers appear verbatim; every other line is plain printable ASCII,
/// closes its comments and strings, and has one of the `GENERATED_SHAPES` (an identifier
/// there is any identifier: the checks of `cstruct` make region names identifiers, and
/// nothing else a region says can reach a declaration).
///
/// # Errors
///
/// Why `header` is not that shape.
pub fn check_c_header(header: &str) -> Result<(), String> {
    let end = header.find("\n */\n").ok_or("no leading block comment")?;
    let (comment, rest) = header.split_at(end + "\n */\n".len());
    if !comment.starts_with("/* ") || comment[2..comment.len() - 4].contains("*/") {
        return Err("the leading comment is not one comment".into());
    }
    tokens(comment.replace('\n', " ").trim()).map(|_| ())?;
    let mut rest = rest.to_string();
    for block in cheader::FIXED_BLOCKS {
        if rest.matches(block).count() > 1 {
            return Err("a fixed block appears twice".into());
        }
        rest = rest.replacen(block, "\n", 1);
    }
    for line in rest.lines() {
        let tokens = tokens(line)?;
        // Only the header's own macros are defined.
        if let [Token::Punct('#'), Token::Ident(d), Token::Ident(macro_name), ..] =
            tokens.as_slice()
        {
            if d == "define" && !macro_name.starts_with("SHMSTORE_") {
                return Err(format!("a macro that is not the header's: `{line}`"));
            }
            // Region names are suspended as macros; the header's own never are.
            if d == "undef" && macro_name.to_ascii_uppercase().starts_with("SHMSTORE_") {
                return Err(format!("the header's own macro undefined: `{line}`"));
            }
        }
        if !GENERATED_SHAPES.iter().any(|shape| spells(&tokens, shape)) {
            return Err(format!("a line of no known shape: `{line}`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oracle_knows_generated_lines_and_refuses_code() {
        let line = |l: &str| tokens(l).unwrap();
        assert!(spells(
            &line("    uint32_t rpm[4]; /* offset 8 */"),
            "T I [N]* ;"
        ));
        assert!(spells(
            &line("    unsigned __int128 big; /* offset 16 */"),
            "T I [N]* ;"
        ));
        assert!(spells(
            &line("typedef struct __attribute__((packed, aligned(16))) Odd {"),
            "typedef struct A I {"
        ));
        assert!(spells(
            &line("_Static_assert(offsetof(R, w[0].p) == 4, \"field `w[].p` at 4\");"),
            "_Static_assert ( offsetof ( I , D ) = = N , S ) ;"
        ));
        for code in [
            "int evil(void) { return system(\"id\"); }",
            "#include \"/etc/passwd\"",
            "static int x = 1;",
        ] {
            let tokens = line(code);
            assert!(
                !GENERATED_SHAPES.iter().any(|s| spells(&tokens, s)),
                "{code}"
            );
        }
        assert!(tokens("/* open").is_err());
        assert!(tokens("\"open").is_err());
        assert!(tokens("a\u{1b}b").is_err());
    }
}
