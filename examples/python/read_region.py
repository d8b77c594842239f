#!/usr/bin/env python3
"""Read a shmstore region from Python, with the standard library only.

    python3 examples/python/read_region.py NAME [--max-elements N]
    python3 examples/python/read_region.py ./PATH/TO/FILE.shm   (a file region: any text with a /)

Prints the region's header and every field of its value, decoded from the type descriptor
stored in the region, in the same format as `shmstore inspect NAME`. It follows FORMAT.md:
validate the header, decode the descriptor, take a seqlock-consistent snapshot. A region of
format version 2 has a kinds table too: its values are shown by kind, as `inspect` shows
them (text quoted, flags true/false, enums by variant name, timestamps in RFC 3339, lists as
lists, an absent optional value as none). Then the versions block: the layout the region
holds, each type that shaped it (FORMAT.md "Versions table": a migrated region lists them,
oldest first) and which of them know each field.

A region can be migrated while it is read: a writer of a wider type replaces it under its name
(FORMAT.md "Migration"), and the object this reader mapped then says so in its header's
`lifecycle` word. The reader notices it after its copy, says so, and reads the region its
name refers to now, once.

It maps /dev/shm/NAME (or the file) read-only with `mmap` instead of using
`multiprocessing.shared_memory.SharedMemory(name=...)`: on Python 3.8 to 3.12 that class
registers the segment with the resource tracker, which unlinks it when the process exits,
so merely reading a region would delete it for everyone. A read-only mapping also
guarantees that this reader cannot disturb the writers: it never locks, never writes.
"""

import argparse
import datetime
import errno
import math
import mmap
import os
import pwd
import struct
import sys
import time
import unicodedata

SHM_DIR = "/dev/shm"
MAGIC = b"SHMSTORE"
FORMAT_VERSIONS = (1, 2)  # 2: the descriptor ends with a kinds table
HEADER_SIZE = 256
STATE_READY = 2
FLAG_IN_PLACE = 1 << 0
FLAG_NOTIFY_READERS = 1 << 1
KIND_VALUE = 1
KIND_QUEUE = 2
QUEUE_MODES = {1: "spsc", 2: "mpmc"}
QUEUE_CONTROL_SIZE = 256
QUEUE_CLOSED = 1 << 63
PAYLOAD_MIN_ALIGN = 64
MAX_PAYLOAD_ALIGN = 4096
MAX_DESCRIPTOR_LEN = 16 << 20
DEFAULT_MAX_ELEMENTS = 16

# The header fields up to the mutex (offset 192), in FORMAT.md's order; "=" is native byte
# order without alignment padding, so every field lands at its documented offset.
HEADER = struct.Struct("=8sIIIIQQQQQQQII16sIIQQQIIIIIIQQQQ")
HEADER_FIELDS = (
    "magic format_version header_size state flags fingerprint payload_offset payload_size "
    "payload_align region_size descriptor_offset descriptor_len creator_pid mutex_size "
    "boot_id kind queue_mode queue_capacity queue_element_size version waiters poisoned "
    "commit_in_progress read_requests reads_served lifecycle repair_claim help_resumes_at "
    "versions_offset versions_len"
).split()
# The hot fields `shmstore inspect` shows after the queue fields, in its order.
HOT_FIELDS = (
    "version waiters poisoned commit_in_progress read_requests reads_served "
    "versions_offset versions_len"
).split()
VERSION_OFFSET = 128
LIFECYCLE_OFFSET = 156
LIFECYCLE_CURRENT, LIFECYCLE_MIGRATING, LIFECYCLE_MOVED = 0, 1, 2
VERSIONS_ALIGN = 8
MAX_VERSIONS_LEN = 16 << 20

# Descriptor primitive codes: (name, struct format, size).
PRIMITIVES = {
    1: ("u8", "B", 1),
    2: ("u16", "H", 2),
    3: ("u32", "I", 4),
    4: ("u64", "Q", 8),
    5: ("u128", None, 16),
    6: ("i8", "b", 1),
    7: ("i16", "h", 2),
    8: ("i32", "i", 4),
    9: ("i64", "q", 8),
    10: ("i128", None, 16),
    11: ("f32", "f", 4),
    12: ("f64", "d", 8),
}


class RegionError(Exception):
    """The object is missing, unreadable, or not a valid region."""


def align_up(n, align):
    return (n + align - 1) & ~(align - 1)


def check_header(name, h, object_size):
    """FORMAT.md "Validation on open", in its order. Returns the working and second copy
    offsets (the second is None in place and for queues)."""

    def corrupt(why):
        raise RegionError(f"region `{name}` is corrupt or not a shmstore region: {why}")

    if h["magic"] != MAGIC:
        corrupt("wrong magic")
    if h["format_version"] not in FORMAT_VERSIONS:
        corrupt(f"format version {h['format_version']}, this reader knows 1 and 2")
    if h["header_size"] != HEADER_SIZE:
        corrupt(f"header size {h['header_size']}")
    # mutex_size matters to lockers only; a reader takes no lock.
    if h["state"] != STATE_READY:
        raise RegionError(
            f"region `{name}` is not ready: its creator is still initialising it, or died first"
        )
    flags, kind = h["flags"], h["kind"]
    if flags & ~(FLAG_IN_PLACE | FLAG_NOTIFY_READERS):
        corrupt(f"unknown flags {flags:#x}")
    if kind == KIND_QUEUE:
        if flags != 0 or h["queue_mode"] not in QUEUE_MODES:
            corrupt("a queue with flags or an unknown mode")
        if h["queue_capacity"] < 1 or h["queue_element_size"] < 1:
            corrupt("a queue without capacity or element size")
    elif kind != KIND_VALUE:
        corrupt(f"unknown kind {kind}")
    if h["descriptor_offset"] != HEADER_SIZE or h["descriptor_len"] > MAX_DESCRIPTOR_LEN:
        corrupt("descriptor out of place")
    # A migrated region's versions table lies right after the descriptor; 0 and 0: none.
    before_payload = HEADER_SIZE + h["descriptor_len"]
    if h["versions_offset"] or h["versions_len"]:
        if (
            h["versions_offset"] != align_up(before_payload, VERSIONS_ALIGN)
            or not 1 <= h["versions_len"] <= MAX_VERSIONS_LEN
        ):
            corrupt("versions table out of place")
        before_payload = h["versions_offset"] + h["versions_len"]
    align = h["payload_align"]
    if align < 1 or align & (align - 1) or align > MAX_PAYLOAD_ALIGN:
        corrupt(f"payload alignment {align}")
    copy_align = max(PAYLOAD_MIN_ALIGN, align)
    payload_offset = align_up(before_payload, copy_align)
    single = bool(flags & FLAG_IN_PLACE) or kind == KIND_QUEUE
    first_end = payload_offset + h["payload_size"]
    second = None if single else align_up(first_end, copy_align)
    region_size = first_end if single else second + h["payload_size"]
    if kind == KIND_QUEUE:
        slots = max(QUEUE_CONTROL_SIZE, align)
        if h["payload_size"] != slots + h["queue_capacity"] * h["queue_element_size"]:
            corrupt("the queue's payload size does not match its capacity")
    if h["payload_offset"] != payload_offset or h["region_size"] != region_size:
        corrupt("payload offset or region size disagree with the layout")
    if object_size < region_size:
        corrupt(f"it is {object_size} bytes long, its header says {region_size}")
    return payload_offset, second


def decode_descriptor(name, data, format_version=1):
    """The type name, the field table and (format version 2) the kinds table stored after the
    header. Each kinds entry: path, kind code, capacity, the enum's name and its variants."""
    at = 0

    def take(fmt):
        nonlocal at
        size = struct.calcsize(fmt)
        if at + size > len(data):
            raise RegionError(f"region `{name}`: its type descriptor is truncated")
        value = struct.unpack_from(fmt, data, at)
        at += size
        return value if len(value) > 1 else value[0]

    def text():
        nonlocal at
        n = take("=I")
        if at + n > len(data):
            raise RegionError(f"region `{name}`: its type descriptor is truncated")
        s = data[at : at + n].decode("utf-8")
        at += n
        return s

    type_name = text()
    fields = []
    for _ in range(take("=I")):
        path = text()
        code = take("=I")
        offset = take("=Q")
        ndims = take("=I")
        if ndims > 32:
            raise RegionError(f"region `{name}`: field `{path}` has {ndims} dimensions")
        dims = [take("=QQ") for _ in range(ndims)]
        fields.append({"path": path, "code": code, "offset": offset, "dims": dims})
    kinds = {}
    if format_version == 2:
        for _ in range(take("=I")):
            path = text()
            code = take("=I")
            capacity = take("=Q")
            enum_name = text()
            count = take("=I")
            if count > len(data) - at:
                raise RegionError(f"region `{name}`: its kinds table is truncated")
            variants = []
            for _ in range(count):
                variant = text()
                if at + 16 > len(data):
                    raise RegionError(f"region `{name}`: its kinds table is truncated")
                variants.append((variant, int.from_bytes(data[at : at + 16], "little", signed=True)))
                at += 16
            kinds[path] = {"code": code, "capacity": capacity, "name": enum_name, "variants": variants}
    return type_name, fields, kinds


def decode_versions(name, table):
    """The versions table (FORMAT.md "Versions table"): for each type that shaped the region,
    oldest first, its fingerprint, type name and field paths. Raises RegionError for a table
    that is empty, truncated, has trailing bytes or an entry that does not decode."""

    def unreadable(why):
        raise RegionError(f"region `{name}`: its versions table is unreadable: {why}")

    if len(table) < 4:
        unreadable("it is truncated")
    count = struct.unpack_from("=I", table, 0)[0]
    if count == 0:
        unreadable("it lists no version")
    # Every entry takes at least 16 bytes: a forged count cannot make this loop long.
    if count > (len(table) - 4) // 16:
        unreadable(f"it claims {count} entries, too many for its {len(table)} bytes")
    at, versions = 4, []
    for index in range(count):
        if at + 16 > len(table):
            unreadable(f"entry {index + 1} is truncated")
        fingerprint, format_version, length = struct.unpack_from("=QII", table, at)
        at += 16
        if format_version not in FORMAT_VERSIONS:
            unreadable(f"entry {index + 1} has format version {format_version}")
        if length > MAX_DESCRIPTOR_LEN or at + length > len(table):
            unreadable(f"entry {index + 1} is truncated")
        try:
            type_name, fields, _ = decode_descriptor(name, table[at : at + length], format_version)
        except (RegionError, UnicodeDecodeError) as e:
            unreadable(f"version #{index + 1}: {e}")
        at += length
        paths = [field["path"] for field in fields]
        versions.append({"fingerprint": fingerprint, "type_name": type_name, "paths": paths})
    if at != len(table):
        unreadable(f"{len(table) - at} bytes follow its last entry")
    return versions


def versions_lines(name, mm, h, type_name, schema):
    """The versions block as `shmstore inspect` prints it: the layout held, every version that
    shaped the region (newest last; "held" when it is exactly the held layout), and which
    versions know each field. A region never migrated has one version: its own type."""
    out = [f"\nversions\n  holds {type_name} (fingerprint {h['fingerprint']:#018x})\n"]
    if h["versions_len"] == 0:
        paths = [field["path"] for field in schema.fields]
        versions = [{"fingerprint": h["fingerprint"], "type_name": type_name, "paths": paths}]
    else:
        start = h["versions_offset"]
        try:
            versions = decode_versions(name, mm[start : start + h["versions_len"]])
        except RegionError as e:
            out.append(f"  unreadable: {e}\n")
            return out
    known = {}
    for index, version in enumerate(versions):
        notes = [f"fingerprint {version['fingerprint']:#018x}"]
        if index + 1 == len(versions):
            notes.append("newest")
        if version["fingerprint"] == h["fingerprint"]:
            notes.append("held")
        paths = ", ".join(display_path(path) for path in version["paths"])
        out.append(f"  #{index + 1} {version['type_name']} ({', '.join(notes)}): {paths}\n")
        for path in version["paths"]:
            numbers = known.setdefault(path, [])
            if not numbers or numbers[-1] != f"#{index + 1}":
                numbers.append(f"#{index + 1}")
    rows = [("  field", "known by")]
    rows += [
        (f"  {display_path(field['path'])}", " ".join(known.get(field["path"], [])) or "none")
        for field in schema.fields
    ]
    out.append(table(rows))
    return out


def read_version(mm):
    # One aligned 8-byte load (CPython copies it with memcpy, a single move on x86-64).
    return struct.unpack_from("=Q", mm, VERSION_OFFSET)[0]


def version_word_text(word):
    """The raw version word and what it means, as `shmstore inspect` shows it: it steps by two
    per commit (FORMAT.md), and the version shown everywhere else is half of it."""
    state = "odd: a write under way" if word % 2 else "even: published"
    return f"{word} (version {word >> 1}, {state})"


def snapshot(name, mm, working, second, size, timeout=1.0):
    """A consistent copy of the value and its version: load the version, copy the working
    copy if it is even or the second copy if it is odd (in place: wait while odd), and keep
    the copy only if the version did not move. CPython has no memory fences: on x86-64 loads
    are not reordered with other loads, which is what this relies on."""
    deadline = time.monotonic() + timeout
    while True:
        before = read_version(mm)
        source = working if before % 2 == 0 else second
        if source is not None:
            data = mm[source : source + size]
            if read_version(mm) == before:
                # The raw word steps by two per commit (FORMAT.md); the version shown, as
                # the Rust API and `shmstore inspect` count it, is the number of commits.
                return before >> 1, data
        if time.monotonic() > deadline:
            raise RegionError(
                f"region `{name}`: no consistent copy within {timeout} s (an in-place writer "
                "that died mid-write leaves the version odd until the next locker repairs it)"
            )
        time.sleep(0.00005)


def rust_float(x):
    """The text Rust's `{:?}` gives for an f64, which `shmstore inspect` prints."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = repr(x)
    if "e" in text:  # Python: 1e+20, 1.5e-07; Rust: 1e20, 1.5e-7
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def decode(code, data, at):
    name, fmt, size = PRIMITIVES[code]
    if at + size > len(data):
        return None
    if fmt is None:  # 128-bit integers
        return str(int.from_bytes(data[at : at + size], sys.byteorder, signed=name == "i128"))
    value = struct.unpack_from("=" + fmt, data, at)[0]
    return rust_float(value) if name.startswith("f") else str(value)


def element_count(field):
    n = 1
    for count, _ in field["dims"]:
        n *= count
    return n


def values(field, data, limit):
    """The field's elements in order (last dimension fastest), at most `limit`."""
    out = []
    dims = field["dims"]
    index = [0] * len(dims)
    while len(out) < limit:
        at = field["offset"] + sum(i * stride for i, (_, stride) in zip(index, dims))
        value = decode(field["code"], data, at)
        if value is None:
            break
        out.append(value)
        d = len(dims)
        while True:
            if d == 0:
                return out
            d -= 1
            index[d] += 1
            if index[d] < dims[d][0]:
                break
            index[d] = 0
    return out


def render(field, data, max_elements):
    if field["code"] not in PRIMITIVES:
        return "?"
    shown = values(field, data, max(1, max_elements))
    if not field["dims"]:
        return shown[0] if shown else "?"
    total = element_count(field)
    if len(shown) < total:
        shown.append(f"\u2026 ({total - len(shown)} more)")
    return "[" + ", ".join(shown) + "]"


# ---- Values by kind (format version 2; FORMAT.md "Field kinds") ----------------------------
#
# As the library decodes them (shmstore/src/values.rs): a value is ("num", text),
# ("text", str or None, error), ("flag", bool), ("time", nanoseconds), ("enum", name or None,
# raw), ("opt", value or None), ("list", items or None, error), ("struct", [(name, value)]) or
# ("unreadable",).

TEXT, FLAG, OPTIONAL, TIMESTAMP, ENUM, LIST = 1, 2, 3, 4, 5, 6
REPAIR = (
    "the region was written by another build or program, or is corrupt; write the field "
    "again to repair it"
)


def join_path(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def is_under(path, prefix):
    if not prefix:
        return True
    if not path.startswith(prefix):
        return False
    rest = path[len(prefix) :]
    return rest == "" or rest[0] in ".["


def decode_int(code, data, at):
    """An integer primitive at `at`, or None."""
    if code not in PRIMITIVES or at < 0:
        return None
    name, _, size = PRIMITIVES[code]
    if name.startswith("f") or at + size > len(data):
        return None
    return int.from_bytes(data[at : at + size], sys.byteorder, signed=name.startswith("i"))


class Schema:
    """A region's field table and kinds table, read together."""

    def __init__(self, fields, kinds):
        self.fields = fields
        self.kinds = kinds
        self.by_path = {}
        for field in fields:
            self.by_path.setdefault(field["path"], field)

    def leaf(self, path):
        return self.by_path.get(path)

    def any_under(self, path):
        return next((f for f in self.fields if is_under(f["path"], path)), None)

    def values(self, data):
        """The top-level values: each field of a struct, or the one value (named "")."""
        if "" not in self.kinds and self.leaf("") is None and self.any_under("[]") is None:
            value = self.node("", 0, data)
            if value[0] == "struct":
                return value[1]
        return [("", self.node("", 0, data))]

    def node(self, q, shift, data):
        if q in self.kinds:
            return self.kind(q, self.kinds[q], shift, data)
        leaf = self.leaf(q)
        if leaf is not None:
            return plain_leaf(leaf, q.count("[]"), shift, data)
        array = q + "[]"
        leaf = self.any_under(array)
        if leaf is not None:
            outer = q.count("[]")
            if outer >= len(leaf["dims"]):
                return ("unreadable",)
            count, stride = leaf["dims"][outer]
            if count > len(data):
                return ("unreadable",)
            return ("list", [self.node(array, shift + i * stride, data) for i in range(count)], None)
        names = []
        for field in self.fields:
            path = field["path"]
            if path == q or not is_under(path, q):
                continue
            rest = path[len(q) :]
            rest = rest[1:] if rest.startswith(".") else rest
            ends = [i for i in (rest.find("."), rest.find("[")) if i >= 0]
            name = rest[: min(ends)] if ends else rest
            if name and name not in names:
                names.append(name)
        if not names:
            return ("unreadable",)
        return ("struct", [(name, self.node(join_path(q, name), shift, data)) for name in names])

    def at(self, q, name, shift):
        leaf = self.leaf(join_path(q, name))
        return None if leaf is None else leaf["offset"] + shift

    def kind(self, q, kind, shift, data):
        code = kind["code"]
        if code == TEXT:
            len_at, bytes_at = self.at(q, "len", shift), self.at(q, "bytes", shift)
            if len_at is None or bytes_at is None or len_at + 4 > len(data):
                return ("unreadable",)
            n = struct.unpack_from("=I", data, len_at)[0]
            if n > kind["capacity"]:
                return ("text", None, f"the stored text length {n} is above the capacity {kind['capacity']}: {REPAIR}")
            if bytes_at + n > len(data):
                return ("unreadable",)
            try:
                return ("text", data[bytes_at : bytes_at + n].decode("utf-8"), None)
            except UnicodeDecodeError as e:
                return (
                    "text",
                    None,
                    f"the stored text is not valid UTF-8 (the first {e.start} of its {n} bytes are): "
                    "another program wrote bytes that are not UTF-8, or the region is corrupt; "
                    "write the field again to repair it",
                )
        if code == FLAG:
            at = self.at(q, "value", shift)
            return ("unreadable",) if at is None or at >= len(data) else ("flag", data[at] != 0)
        if code == TIMESTAMP:
            at = self.at(q, "unix_nanos", shift)
            n = None if at is None else decode_int(9, data, at)  # i64
            return ("unreadable",) if n is None else ("time", n)
        if code == ENUM:
            leaf = self.leaf(join_path(q, "raw"))
            raw = None if leaf is None else decode_int(leaf["code"], data, leaf["offset"] + shift)
            if raw is None:
                return ("unreadable",)
            variant = next((name for name, value in kind["variants"] if value == raw), None)
            return ("enum", variant, raw)
        if code == OPTIONAL:
            at = self.at(q, "present", shift)
            if at is None or at >= len(data):
                return ("unreadable",)
            return ("opt", self.node(join_path(q, "value"), shift, data) if data[at] else None)
        if code == LIST:
            header = self.leaf(join_path(q, "len")) or self.leaf(join_path(q, "present"))
            if header is None:
                return ("unreadable",)
            outer = q.count("[]")
            width = header["dims"][outer][0] if outer < len(header["dims"]) else 1
            len_at = header["offset"] + shift
            if len_at + width > len(data):
                return ("unreadable",)
            raw = data[len_at : len_at + width]
            if width == 1:
                n = raw[0]
            elif width < 4:
                n = struct.unpack_from("=H", raw)[0]
            else:
                n = struct.unpack_from("=I", raw)[0]
            if n > kind["capacity"]:
                return ("list", None, f"the stored list length {n} is above the capacity {kind['capacity']}: {REPAIR}")
            items = join_path(q, "items")
            leaf = self.leaf(items)
            out = []
            for i in range(n):
                element_at = len_at + width * (i + 1)
                if leaf is not None:
                    if leaf["code"] not in PRIMITIVES:
                        out.append(("unreadable",))
                        continue
                    size = PRIMITIVES[leaf["code"]][2]
                    per = width // max(size, 1)
                    one = [decode(leaf["code"], data, element_at + j * size) for j in range(per)]
                    one = [("unreadable",) if v is None else ("num", v) for v in one]
                    out.append(one[0] if per == 1 else ("list", one, None))
                else:
                    out.append(self.node(items + "[]", shift + i * width, data))
            return ("list", out, None)
        return ("unreadable",)


def plain_leaf(leaf, outer, shift, data):
    code = leaf["code"]
    if code not in PRIMITIVES:
        return ("unreadable",)
    start = leaf["offset"] + shift
    dims = leaf["dims"][outer:]
    one = lambda at: ("unreadable",) if decode(code, data, at) is None else ("num", decode(code, data, at))
    if not dims:
        return one(start)
    if len(dims) == 1 and dims[0][0] <= len(data):
        count, stride = dims[0]
        return ("list", [one(start + i * stride) for i in range(count)], None)
    return ("unreadable",)


def rust_debug_str(text):
    """`text` quoted as Rust's `{:?}` quotes a str, as `inspect` prints text."""
    out = ['"']
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif c == "\0":
            out.append("\\0")
        elif c != " " and unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"):
            out.append(f"\\u{{{ord(c):x}}}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def rfc3339(nanos):
    """A timestamp as `inspect` prints it: UTC, nine digits of nanoseconds."""
    seconds, fraction = divmod(nanos, 1_000_000_000)
    when = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=seconds)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"


def render_value(value, max_elements):
    """A value as `shmstore inspect` prints it, lists cut to `max_elements`."""
    tag = value[0]
    if tag == "num":
        return value[1]
    if tag == "text":
        return rust_debug_str(value[1]) if value[2] is None else f"<error: {value[2]}>"
    if tag == "flag":
        return "true" if value[1] else "false"
    if tag == "time":
        return rfc3339(value[1])
    if tag == "enum":
        return value[1] if value[1] is not None else f"{value[2]} (unknown variant)"
    if tag == "opt":
        return "none" if value[1] is None else render_value(value[1], max_elements)
    if tag == "list":
        if value[1] is None:
            return f"<error: {value[2]}>"
        limit = max(1, max_elements)
        shown = [render_value(v, max_elements) for v in value[1][:limit]]
        if len(value[1]) > limit:
            shown.append(f"\u2026 ({len(value[1]) - limit} more)")
        return "[" + ", ".join(shown) + "]"
    if tag == "struct":
        return "{ " + ", ".join(f"{n}: {render_value(v, max_elements)}" for n, v in value[1]) + " }"
    return "?"


def display_path(path):
    # As `inspect`: a primitive type (empty path) or an array of structs (`[].x`) is `value`.
    return "value" + path if path == "" or path.startswith("[") else path


def table(rows, indent=""):
    width = max(len(key) for key, _ in rows)
    return "".join(f"{indent}{key.ljust(width)}  {value}".rstrip() + "\n" for key, value in rows)


def boot_id_text(raw):
    hex_ = raw.hex()
    return f"{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-{hex_[16:20]}-{hex_[20:]}"


def current_boot_id():
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return bytes.fromhex(f.read().strip().replace("-", ""))
    except (OSError, ValueError):
        return None


def owner_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def main():
    parser = argparse.ArgumentParser(description="Print a shmstore region like `shmstore inspect`.")
    parser.add_argument(
        "name",
        help="the region: a name (without /dev/shm/), or a file region's path (text with a /)",
    )
    parser.add_argument("--max-elements", type=int, default=DEFAULT_MAX_ELEMENTS, metavar="N")
    args = parser.parse_args()
    name = args.name
    if name.startswith("sysv:"):
        # The standard library has no shmat; `shmstore inspect` reads segments.
        raise RegionError(
            f"`{name}` is a System V segment, which this reader cannot attach "
            f"(Python's standard library has no shmat): use `shmstore inspect {name}`"
        )
    if "/" in name:
        # A file region, as `shmstore inspect ./state.shm` reads it; a symbolic link as the
        # last component is refused, as the library refuses it.
        path = name
        flags = os.O_NOFOLLOW
    elif not name or name in (".", ".."):
        raise RegionError(f"invalid region name {name!r}")
    else:
        path = os.path.join(SHM_DIR, name)
        flags = 0
    for attempt in range(2):
        text = read_region(name, path, flags, args.max_elements)
        if text is not None:
            sys.stdout.write(text)
            return
        if attempt == 0:
            print(f"region `{name}` moved: migrated to a wider type; reading its successor")
    raise RegionError(
        f"region `{name}` moved again while it was read (or its header says moved while its "
        "name still refers to it): run this again"
    )


def has_moved(mm, path, st):
    """Whether the object mapped (`st`: its fstat) moved, as FORMAT.md "Migration" tells it:
    its `lifecycle` says moved (2), or says anything else than current (0: 1 is a migration
    under way, or one whose migrator died) while the name refers to another object."""
    lifecycle = struct.unpack_from("=I", mm, LIFECYCLE_OFFSET)[0]
    if lifecycle == LIFECYCLE_CURRENT:
        return False
    if lifecycle == LIFECYCLE_MOVED:
        return True
    try:
        named = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return True
    return (named.st_dev, named.st_ino) != (st.st_dev, st.st_ino)


def read_region(name, path, flags, max_elements):
    """The text of the region at `path`, or None when it moved while it was read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | flags)
    except FileNotFoundError:
        raise RegionError(f"region `{name}` does not exist")
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        raise RegionError(f"`{name}` is a symbolic link; give the path of the region itself")
    try:
        st = os.fstat(fd)
        # The size first: touching a page past the end of the object raises SIGBUS.
        if st.st_size < HEADER_SIZE:
            raise RegionError(f"region `{name}` is {st.st_size} bytes, shorter than a header")
        mm = mmap.mmap(fd, st.st_size, mmap.MAP_SHARED, mmap.PROT_READ)
    finally:
        os.close(fd)
    try:
        h = dict(zip(HEADER_FIELDS, HEADER.unpack_from(mm, 0)))
        working, second = check_header(name, h, st.st_size)
        descriptor = mm[HEADER_SIZE : HEADER_SIZE + h["descriptor_len"]]
        type_name, fields, kinds = decode_descriptor(name, descriptor, h["format_version"])
        schema = Schema(fields, kinds)
        text = region_text(name, mm, h, st, type_name, schema, working, second, max_elements)
        # After the copy: a region that moved meanwhile holds its last value, which its
        # successor under the name has too, and perhaps newer ones.
        return None if has_moved(mm, path, st) else text
    finally:
        mm.close()


def value_lines(schema, data, max_elements):
    """`path = value` for every field: by kind for a region with kinds, as `inspect`."""
    if schema.kinds:
        return [
            f"{name or 'value'} = {render_value(value, max_elements)}"
            for name, value in schema.values(data)
        ]
    return [
        f"{display_path(field['path'])} = {render(field, data, max_elements)}"
        for field in schema.fields
    ]


def region_text(name, mm, h, st, type_name, schema, working, second, max_elements):
    """Everything `shmstore inspect NAME` prints for the region."""
    is_queue = h["kind"] == KIND_QUEUE
    type_size = h["queue_element_size"] if is_queue else h["payload_size"]
    flags = h["flags"]
    if is_queue:
        tail, head = struct.unpack_from("=Q", mm, working)[0], struct.unpack_from("=Q", mm, working + 64)[0]
        closed = bool(tail & QUEUE_CLOSED)
        length = max(0, (tail & ~QUEUE_CLOSED) - head)
        kind = (
            f"queue, {QUEUE_MODES[h['queue_mode']]}, capacity {h['queue_capacity']}, "
            f"{length} queued, {'closed' if closed else 'open'}"
        )
    elif flags & FLAG_IN_PLACE:
        poisoned = ", POISONED" if h["poisoned"] else ""
        kind = f"value, in place (one copy, seqlock, poisoning){poisoned}"
    else:
        kind = "value, default mode (two copies, crash-atomic)"
    alive = h["creator_pid"] != 0 and os.path.exists(f"/proc/{h['creator_pid']}")
    out = [
        table(
            [
                ("region", name),
                ("kind", kind),
                ("type", f"{type_name} ({type_size} bytes, align {h['payload_align']})"),
                ("creator", f"pid {h['creator_pid']} ({'alive' if alive else 'dead'})"),
                (
                    "object",
                    f"{st.st_size} bytes, mode {st.st_mode & 0o7777:04o}, "
                    f"owner {owner_name(st.st_uid)}",
                ),
            ]
        )
    ]

    yes = lambda bit: "yes" if flags & bit else "no"
    this_boot = "this boot" if current_boot_id() == h["boot_id"] else "another boot"
    rows = [
        ("magic", h["magic"].decode()),
        ("format_version", h["format_version"]),
        ("header_size", h["header_size"]),
        ("state", f"{h['state']} (ready)"),
        ("flags", f"{flags:#x} (in_place: {yes(FLAG_IN_PLACE)}, notify_readers: {yes(FLAG_NOTIFY_READERS)})"),
        ("fingerprint", f"{h['fingerprint']:#018x}"),
    ]
    rows += [(k, h[k]) for k in HEADER_FIELDS[6:14]]
    rows += [
        ("boot_id", f"{boot_id_text(h['boot_id'])} ({this_boot})"),
        ("kind", f"{h['kind']} ({'queue' if is_queue else 'value'})"),
        ("queue_mode", f"{h['queue_mode']} ({QUEUE_MODES.get(h['queue_mode'], 'none')})"),
        ("queue_capacity", h["queue_capacity"]),
        ("queue_element_size", h["queue_element_size"]),
    ]
    # The hot fields, read now (the header was unpacked before the snapshot).
    hot = dict(zip(HEADER_FIELDS, HEADER.unpack_from(mm, 0)))
    rows += [(k, version_word_text(hot[k]) if k == "version" else hot[k]) for k in HOT_FIELDS]
    out.append("\nheader\n")
    out.append(table([(k, str(v)) for k, v in rows], indent="  "))
    out.extend(versions_lines(name, mm, h, type_name, schema))

    if is_queue:
        tail = struct.unpack_from("=Q", mm, working)[0] & ~QUEUE_CLOSED
        head = struct.unpack_from("=Q", mm, working + 64)[0]
        if head >= tail:
            out.append("\noldest element: none, the queue is empty\n")
        else:
            slot = working + max(QUEUE_CONTROL_SIZE, h["payload_align"])
            slot += (head % h["queue_capacity"]) * type_size
            # A copy taken without the queue's protocol: a consumer may be taking it meanwhile.
            data = mm[slot : slot + type_size]
            out.append(f"\noldest element (of {tail - head})\n")
            out.extend(f"  {line}\n" for line in value_lines(schema, data, max_elements))
    else:
        version, data = snapshot(name, mm, working, second, h["payload_size"])
        out.append(f"\nvalue at version {version}\n")
        out.extend(f"  {line}\n" for line in value_lines(schema, data, max_elements))
    return "".join(out)


if __name__ == "__main__":
    try:
        main()
    except RegionError as e:
        print(f"read_region.py: {e}", file=sys.stderr)
        sys.exit(1)
    except PermissionError as e:
        print(f"read_region.py: {e}; the region's mode does not let this user read it", file=sys.stderr)
        sys.exit(1)
