#!/usr/bin/env python3
"""Read a shmstore region from Python, with the standard library only.

    python3 examples/python/read_region.py NAME [--max-elements N]

Prints the region's header and every field of its value, decoded from the type descriptor
stored in the region, in the same format as `shmstore inspect NAME`. It follows FORMAT.md:
validate the header, decode the descriptor, take a seqlock-consistent snapshot.

It maps /dev/shm/NAME read-only with `mmap` instead of using
`multiprocessing.shared_memory.SharedMemory(name=...)`: on Python 3.8 to 3.12 that class
registers the segment with the resource tracker, which unlinks it when the process exits,
so merely reading a region would delete it for everyone. A read-only mapping also
guarantees that this reader cannot disturb the writers: it never locks, never writes.
"""

import argparse
import math
import mmap
import os
import pwd
import struct
import sys
import time

SHM_DIR = "/dev/shm"
MAGIC = b"SHMSTORE"
FORMAT_VERSION = 1
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

# The header fields up to offset 156, in FORMAT.md's order; "=" is native byte order without
# alignment padding, so every field lands at its documented offset.
HEADER = struct.Struct("=8sIIIIQQQQQQQII16sIIQQQIIIII")
HEADER_FIELDS = (
    "magic format_version header_size state flags fingerprint payload_offset payload_size "
    "payload_align region_size descriptor_offset descriptor_len creator_pid mutex_size "
    "boot_id kind queue_mode queue_capacity queue_element_size version waiters poisoned "
    "commit_in_progress read_requests reads_served"
).split()
VERSION_OFFSET = 128

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
    if h["format_version"] != FORMAT_VERSION:
        corrupt(f"format version {h['format_version']}, this reader knows {FORMAT_VERSION}")
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
    align = h["payload_align"]
    if align < 1 or align & (align - 1) or align > MAX_PAYLOAD_ALIGN:
        corrupt(f"payload alignment {align}")
    copy_align = max(PAYLOAD_MIN_ALIGN, align)
    payload_offset = align_up(HEADER_SIZE + h["descriptor_len"], copy_align)
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


def decode_descriptor(name, data):
    """The type name and field table stored after the header."""
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
    return type_name, fields


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
    parser.add_argument("name", help="the region's name (without /dev/shm/)")
    parser.add_argument("--max-elements", type=int, default=DEFAULT_MAX_ELEMENTS, metavar="N")
    args = parser.parse_args()
    name = args.name
    if not name or "/" in name or name in (".", ".."):
        raise RegionError(f"invalid region name {name!r}")

    path = os.path.join(SHM_DIR, name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise RegionError(f"region `{name}` does not exist")
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
        type_name, fields = decode_descriptor(name, descriptor)
        print_region(name, mm, h, st, type_name, fields, working, second, args.max_elements)
    finally:
        mm.close()


def print_region(name, mm, h, st, type_name, fields, working, second, max_elements):
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
    rows += [(k, version_word_text(hot[k]) if k == "version" else hot[k]) for k in HEADER_FIELDS[19:]]
    out.append("\nheader\n")
    out.append(table([(k, str(v)) for k, v in rows], indent="  "))

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
            for field in fields:
                out.append(f"  {display_path(field['path'])} = {render(field, data, max_elements)}\n")
    else:
        version, data = snapshot(name, mm, working, second, h["payload_size"])
        out.append(f"\nvalue at version {version}\n")
        for field in fields:
            out.append(f"  {display_path(field['path'])} = {render(field, data, max_elements)}\n")
    sys.stdout.write("".join(out))


if __name__ == "__main__":
    try:
        main()
    except RegionError as e:
        print(f"read_region.py: {e}", file=sys.stderr)
        sys.exit(1)
    except PermissionError as e:
        print(f"read_region.py: {e}; the region's mode does not let this user read it", file=sys.stderr)
        sys.exit(1)
