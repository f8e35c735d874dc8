"""Read the CIFAR pickles by decoding them here, so that nothing in a file is ever run.

A pickle is a program for a small stack machine. Each opcode is a byte, some followed by an
argument: SHORT_BINSTRING pushes a string, EMPTY_LIST a list, MARK marks the stack, APPENDS moves
what is above the mark into the list below it, BINPUT and BINGET store and fetch objects in a table
(the memo), STOP ends with the object on top. GLOBAL names a function, REDUCE calls it with a tuple
of arguments, BUILD hands an object its state: that is how a pickle rebuilds any object, and how a
crafted one runs `os.system`. Even an Unpickler that allows only NumPy's functions hands them file
data, and a few dozen crafted bytes crash NumPy's C code or make it allocate gigabytes.

So this module runs the machine itself, with only the opcodes that the CIFAR files (Python 2,
protocol 2) and Python 3 copies of them (protocols 2 to 5) use. A GLOBAL becomes an inert Name, and
REDUCE and BUILD are matched against the ways these files write a uint8 array, nothing else:

    numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b"b")
        BUILD (1, shape, dtype, False, bytes)
    numpy.dtype("u1", False, True)   BUILD (3, "|", None, None, None, -1, -1, 0)
    numpy._core.numeric._frombuffer(bytes, dtype, shape, "C")   (protocol 5)
    _codecs.encode(text, "latin1")   (how Python 3's protocol 2 writes bytes)

The array is made here from bytes whose count matches its shape. Python 2 strings come back as
bytes, as pickle.load(f, encoding="bytes") returns them (keys b"data", b"labels"); a Python 3 copy
has str keys, and those of the top-level dict become bytes, so that callers find b"data" in both.

Memory stays bounded whatever the file says: a declared length is checked against the bytes left
before anything is read, the memo is a dict (a large index costs no more than a small one), at most
MAX_OBJECTS objects are made, MARKs nest at most MAX_DEPTH deep, and the arrays (and bytes made
from text) hold at most twice the file's bytes.
"""
import math
import struct
from dataclasses import dataclass

import numpy as np

from minivit.errors import DataError

MAX_DEPTH = 16  # nested MARKs: the CIFAR files use 3
MAX_NDIM = 32   # NumPy 1's limit on an array's dimensions
# Objects pushed or stored in the memo: CIFAR-100's training file, the largest, makes about
# 220,000 (as a Python 3 copy of protocol 2), and a crafted file is held to ~160 MB of them.
MAX_OBJECTS = 2_000_000
UINT8 = np.dtype(np.uint8)

# The functions a CIFAR pickle names, and the part each plays in a pickled array.
ROLES = {
    ("numpy.core.multiarray", "_reconstruct"): "reconstruct",   # NumPy 1 (the official files)
    ("numpy._core.multiarray", "_reconstruct"): "reconstruct",  # NumPy 2
    ("numpy.core.numeric", "_frombuffer"): "frombuffer",        # protocol 5, NumPy 1
    ("numpy._core.numeric", "_frombuffer"): "frombuffer",       # protocol 5, NumPy 2
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("_codecs", "encode"): "encode",                            # bytes, in protocol 2 by Python 3
}


@dataclass(frozen=True)
class Name:
    """A function the pickle names with GLOBAL: a label, never imported or called."""
    text: str  # module.name
    role: str  # its value in ROLES


NDARRAY = Name("numpy.ndarray", "ndarray")


class Pending:
    """What REDUCE makes of numpy.dtype(...) or _reconstruct(...): nothing yet. BUILD brings the
    state, checks it and sets `value` to the dtype or the array."""

    def __init__(self, role):
        self.role, self.value = role, None


OPCODES = {}  # opcode byte: (name, the Decoder method that runs it)


def opcode(code, name):
    """Make the decorated method the one that runs opcode `code`."""
    def register(method):
        OPCODES[code] = name, method
        return method
    return register


class Decoder:
    """Runs the opcodes of the pickle `data` (read from `path`) on a stack, and returns the dict
    that STOP finds on it."""

    def __init__(self, data, path):
        self.data, self.path = data, path
        self.pos = self.start = 0  # the next byte to read; where the running opcode starts
        self.name = None           # the running opcode's name, for error messages
        self.stack, self.memo = [], {}
        self.marks = []   # the stack's length at each open MARK
        self.objects = 0  # pushed or stored, up to MAX_OBJECTS
        # Bytes made from other objects (arrays, bytes decoded from text). In a real file each
        # has its own bytes in the file, at least one per pixel or character, and is made at most
        # twice (text -> bytes -> array); a crafted one could remake one buffer from the memo.
        self.allowance = 2 * len(data)

    def run(self):
        """Run opcodes up to STOP, and return what it returns."""
        while True:
            self.start = self.pos
            code = self.read(1)
            if code not in OPCODES:
                raise self.damaged(f"opcode {code!r}, which a CIFAR pickle does not use")
            self.name, method = OPCODES[code]
            if self.name == "STOP":
                return method(self)
            method(self)

    # --- reading the file and moving objects on the stack ---

    def damaged(self, what):
        return DataError(f"{self.path} is not a readable CIFAR pickle ({what}, at byte "
                         f"{self.start:,}): delete it and download it again")

    def read(self, n):
        """The next n bytes. The file must have them: a declared length is checked before any
        memory is set aside for it."""
        left = len(self.data) - self.pos
        if n < 0:
            raise self.damaged(f"a negative length ({n})")
        if n > left:
            raise self.damaged(f"{n:,} bytes needed where {left:,} remain: the file is truncated "
                               f"or a length in it is wrong")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def number(self, layout):
        """The next number, laid out as `layout` says (a struct format)."""
        return struct.unpack(layout, self.read(struct.calcsize(layout)))[0]

    def text(self, n):
        """The next n bytes, as UTF-8 text."""
        try:
            return self.read(n).decode("utf-8")
        except UnicodeDecodeError:
            raise self.damaged("a string that is not UTF-8") from None

    def count(self):
        self.objects += 1
        if self.objects > MAX_OBJECTS:
            raise self.damaged(f"more than {MAX_OBJECTS:,} objects")

    def spend(self, n):
        """Account for n bytes made from other objects."""
        self.allowance -= n
        if self.allowance < 0:
            raise self.damaged("arrays and bytes larger than the file could hold")

    def push(self, value):
        self.count()
        self.stack.append(value)

    def pop(self, n):
        """The top n objects, which must lie above the last MARK."""
        floor = self.marks[-1] if self.marks else 0
        if len(self.stack) - floor < n:
            raise self.damaged(f"{self.name} finds too few objects on the stack")
        items = self.stack[len(self.stack) - n:]
        del self.stack[len(self.stack) - n:]
        return items

    def peek(self):
        """The top object, left in place."""
        (value,) = self.pop(1)
        self.stack.append(value)
        return value

    # --- the opcodes ---

    @opcode(b"\x80", "PROTO")
    def proto(self):
        version = self.number("<B")
        if not 2 <= version <= 5:
            raise self.damaged(f"pickle protocol {version}; CIFAR pickles use 2 to 5")

    @opcode(b"\x95", "FRAME")
    def frame(self):
        """Frames group opcodes for buffered reading: the whole file is in memory, so their
        length is only checked."""
        size, left = self.number("<Q"), len(self.data) - self.pos
        if size > left:
            raise self.damaged(f"a frame of {size:,} bytes where {left:,} remain")

    @opcode(b"(", "MARK")
    def mark(self):
        if len(self.marks) == MAX_DEPTH:
            raise self.damaged(f"MARKs nested more than {MAX_DEPTH} deep")
        self.marks.append(len(self.stack))

    def pop_mark(self):
        """The objects above the last MARK, which is removed."""
        if not self.marks:
            raise self.damaged(f"{self.name} without a MARK")
        items = self.stack[self.marks[-1]:]
        del self.stack[self.marks.pop():]
        return items

    @opcode(b"N", "NONE")
    def none(self):
        self.push(None)

    @opcode(b"\x88", "NEWTRUE")
    def newtrue(self):
        self.push(True)

    @opcode(b"\x89", "NEWFALSE")
    def newfalse(self):
        self.push(False)

    @opcode(b"K", "BININT1")
    def binint1(self):
        self.push(self.number("<B"))

    @opcode(b"M", "BININT2")
    def binint2(self):
        self.push(self.number("<H"))

    @opcode(b"J", "BININT")
    def binint(self):
        self.push(self.number("<i"))

    @opcode(b"U", "SHORT_BINSTRING")  # a Python 2 str: bytes, as with encoding="bytes"
    def short_binstring(self):
        self.push(self.read(self.number("<B")))

    @opcode(b"T", "BINSTRING")
    def binstring(self):
        self.push(self.read(self.number("<i")))

    @opcode(b"C", "SHORT_BINBYTES")
    def short_binbytes(self):
        self.push(self.read(self.number("<B")))

    @opcode(b"B", "BINBYTES")
    def binbytes(self):
        self.push(self.read(self.number("<I")))

    @opcode(b"\x96", "BYTEARRAY8")  # an array's pixels, in protocol 5
    def bytearray8(self):
        self.push(bytearray(self.read(self.number("<Q"))))

    @opcode(b"\x8c", "SHORT_BINUNICODE")
    def short_binunicode(self):
        self.push(self.text(self.number("<B")))

    @opcode(b"X", "BINUNICODE")
    def binunicode(self):
        self.push(self.text(self.number("<I")))

    @opcode(b"\x85", "TUPLE1")
    def tuple1(self):
        self.push(tuple(self.pop(1)))

    @opcode(b"\x86", "TUPLE2")
    def tuple2(self):
        self.push(tuple(self.pop(2)))

    @opcode(b"\x87", "TUPLE3")
    def tuple3(self):
        self.push(tuple(self.pop(3)))

    @opcode(b"t", "TUPLE")
    def tuple_marked(self):
        self.push(tuple(self.pop_mark()))

    @opcode(b"]", "EMPTY_LIST")
    def empty_list(self):
        self.push([])

    @opcode(b"a", "APPEND")
    def append(self):
        self.extend(self.pop(1))

    @opcode(b"e", "APPENDS")
    def appends(self):
        self.extend(self.pop_mark())

    def extend(self, items):
        """Append `items` to the list on the stack. A CIFAR list holds labels (ints) or names
        (strings), so anything else, or a mix, is refused."""
        target = self.peek()
        if type(target) is not list:
            raise self.damaged(f"{self.name} onto {kind(target)}, not a list")
        kinds = {item_kind(item) for item in target[:1] + items}
        if len(kinds) > 1 or kinds - {"numbers", "names"}:
            raise self.damaged(f"a list holding {' and '.join(sorted(kinds))}; a CIFAR list "
                               f"holds only numbers (labels) or only names")
        target.extend(items)

    @opcode(b"}", "EMPTY_DICT")
    def empty_dict(self):
        self.push({})

    @opcode(b"s", "SETITEM")
    def setitem(self):
        self.update(self.pop(2))

    @opcode(b"u", "SETITEMS")
    def setitems(self):
        self.update(self.pop_mark())

    def update(self, items):
        """Add the keys and values in `items` (alternating) to the dict on the stack. Its keys are
        strings, and its values strings, numbers, lists or arrays."""
        target = self.peek()
        if type(target) is not dict:
            raise self.damaged(f"{self.name} into {kind(target)}, not a dict")
        if len(items) % 2:
            raise self.damaged(f"{self.name} with a key and no value")
        for key, value in zip(items[::2], items[1::2]):
            if not isinstance(key, (bytes, str)):
                raise self.damaged(f"a dict key that is {kind(key)}, not a string")
            if not isinstance(value, (bytes, str, int, list, np.ndarray)):
                raise self.damaged(f"a dict value that is {kind(value)}; a CIFAR dict holds "
                                   f"only strings, numbers, lists and arrays")
            target[key] = value

    @opcode(b"q", "BINPUT")
    def binput(self):
        self.store(self.number("<B"))

    @opcode(b"r", "LONG_BINPUT")
    def long_binput(self):
        self.store(self.number("<I"))

    @opcode(b"\x94", "MEMOIZE")
    def memoize(self):
        self.store(len(self.memo))

    def store(self, index):
        """Store the top object as memo entry `index`: the memo is a dict, so a large index
        costs no more than a small one."""
        self.count()
        self.memo[index] = self.peek()

    @opcode(b"h", "BINGET")
    def binget(self):
        self.recall(self.number("<B"))

    @opcode(b"j", "LONG_BINGET")
    def long_binget(self):
        self.recall(self.number("<I"))

    def recall(self, index):
        """Push memo entry `index` (for a dtype or an array stored before its BUILD, what BUILD
        made)."""
        if index not in self.memo:
            raise self.damaged(f"{self.name} {index}, which nothing was stored as")
        value = self.memo[index]
        self.push(value.value if isinstance(value, Pending) and value.value is not None else value)

    @opcode(b"c", "GLOBAL")
    def global_name(self):
        module, name = self.line(), self.line()
        self.push(self.named(module, name))

    def line(self):
        """The next line, without its newline: GLOBAL's arguments."""
        end = self.data.find(b"\n", self.pos)
        if end < 0:
            raise self.damaged("a GLOBAL name without its newline")
        return self.read(end + 1 - self.pos)[:-1].decode("utf-8", "replace")

    @opcode(b"\x93", "STACK_GLOBAL")
    def stack_global(self):
        module, name = self.pop(2)
        if not (type(module) is str and type(name) is str):
            raise self.damaged("STACK_GLOBAL without a module and a name")
        self.push(self.named(module, name))

    def named(self, module, name):
        role = ROLES.get((module, name))
        if role is None:
            raise DataError(f"refusing to unpickle {shown(module)}.{shown(name)} from "
                            f"{self.path}: a CIFAR file holds only arrays and lists; delete it "
                            f"and download it again")
        return Name(f"{module}.{name}", role)

    @opcode(b"R", "REDUCE")
    def reduce(self):
        function, args = self.pop(2)
        if not isinstance(function, Name) or type(args) is not tuple:
            raise self.damaged(f"REDUCE calls {kind(function)} with {kind(args)}")
        if function.role == "dtype":
            if not any(matches(args, (code, 0, 1)) for code in ("u1", b"u1", "|u1", b"|u1")):
                code = args[0] if args and isinstance(args[0], (str, bytes)) else "?"
                raise self.damaged(f"an array of dtype {shown(code)}; CIFAR arrays are uint8")
            self.push(Pending("dtype"))
        elif function.role == "reconstruct" and matches(args, (NDARRAY, (0,), b"b")):
            self.push(Pending("array"))
        elif (function.role == "frombuffer" and len(args) == 4
              and isinstance(args[0], (bytes, bytearray)) and args[1] is UINT8
              and matches(args[3], "C")):
            self.push(self.array(args[2], args[0]))
        elif function.role == "encode" and len(args) == 2 and type(args[0]) is str \
                and matches(args[1], "latin1"):
            self.spend(len(args[0]))
            try:
                self.push(args[0].encode("latin1"))
            except UnicodeEncodeError:
                raise self.damaged("bytes written as text beyond latin1") from None
        else:
            raise self.damaged(f"{function.text} called with other arguments than a CIFAR "
                               f"pickle gives it")

    @opcode(b"b", "BUILD")
    def build(self):
        (state,) = self.pop(1)
        target = self.peek()
        if not (isinstance(target, Pending) and target.value is None):
            raise self.damaged(f"BUILD of {kind(target)}")
        if target.role == "dtype":
            if not any(matches(state, (3, order, None, None, None, -1, -1, 0))
                       for order in ("|", b"|")):
                raise self.damaged("a dtype whose state is not uint8's")
            target.value = UINT8
        elif (type(state) is tuple and len(state) == 5 and matches(state[0], 1)
              and state[2] is UINT8 and matches(state[3], 0) and type(state[4]) is bytes):
            target.value = self.array(state[1], state[4])
        else:
            raise self.damaged("an array whose state is not (1, shape, uint8, False, bytes)")
        self.stack[-1] = target.value

    def array(self, shape, pixels):
        """The uint8 array of `shape` in the bytes `pixels`, which must hold exactly its values."""
        if not (type(shape) is tuple and len(shape) <= MAX_NDIM
                and all(type(n) is int and n >= 0 for n in shape)):
            raise self.damaged(f"an array shape that is {kind(shape)}, not a tuple of sizes")
        if math.prod(shape) != len(pixels):
            raise self.damaged(f"an array of shape {shape} in {len(pixels):,} bytes")
        self.spend(len(pixels))
        return np.frombuffer(pixels, np.uint8).reshape(shape).copy()

    @opcode(b".", "STOP")
    def stop(self):
        """The dict on the stack, with its str keys (a Python 3 copy's) made bytes."""
        if self.marks or len(self.stack) != 1:
            raise self.damaged(f"STOP with {len(self.stack)} objects on the stack and "
                               f"{len(self.marks)} MARKs open")
        if self.pos != len(self.data):
            raise self.damaged(f"bytes after STOP ({len(self.data) - self.pos:,})")
        result = self.stack[0]
        if type(result) is not dict:
            raise self.damaged(f"a pickle of {kind(result)}, not of a dict")
        return {key.encode() if isinstance(key, str) else key: value
                for key, value in result.items()}


def matches(value, pattern):
    """Whether `value` equals `pattern`, item by item for tuples. Only values of the pattern's
    type are compared, so no array's == runs on file data; an int pattern accepts a bool (Python 2
    wrote 0 where Python 3 writes False)."""
    if type(pattern) is tuple:
        return (type(value) is tuple and len(value) == len(pattern)
                and all(map(matches, value, pattern)))
    return isinstance(value, type(pattern)) and value == pattern


def item_kind(value):
    """What a list item is: "numbers" (labels), "names", or what kind() says."""
    if isinstance(value, int):
        return "numbers"
    if isinstance(value, (bytes, str)):
        return "names"
    return kind(value)


def kind(value):
    """What `value` is, in a few words for an error message."""
    if isinstance(value, Name):
        return value.text
    if isinstance(value, Pending):
        return f"{with_article(value.role)} before its BUILD"
    if value is None:
        return "None"
    return with_article("array" if isinstance(value, np.ndarray) else type(value).__name__)


def with_article(noun):
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def shown(text):
    """A string from the file, made printable and short for an error message."""
    short = text[:60] if isinstance(text, str) else text[:60].decode("latin1")
    short = short if short.isprintable() else ascii(short)
    return short + ("..." if len(text) > 60 else "")


def load_pickle(path):
    """The dict in the CIFAR pickle `path` (Python 2, or a Python 3 copy of protocol 2 to 5),
    decoded here without running anything it names."""
    with open(path, "rb") as f:
        return Decoder(f.read(), path).run()
