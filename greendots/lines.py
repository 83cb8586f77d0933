"""Reading JSON Lines files that grow: complete lines only, backwards from the end."""

# The same block size Tornado uses to stream files: large enough that one read
# holds hundreds of status lines, small enough to keep memory flat.
CHUNK_SIZE = 64 * 1024


def complete_end(f, size, chunk_size=CHUNK_SIZE):
    """The offset just past the last newline in the first ``size`` bytes of ``f``.

    A writer may be in the middle of a line at any moment; bytes after the last
    newline are not a line yet. Reads backwards from ``size`` only as far as the
    last newline. Returns 0 when there is no newline at all.
    """
    pos = size
    while pos > 0:
        start = max(0, pos - chunk_size)
        f.seek(start)
        block = f.read(pos - start)
        i = block.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0


def read_blocks_backwards(f, end, start=0, chunk_size=CHUNK_SIZE):
    """Yield ``f[start:end]`` as blocks of whole lines, the last block first.

    Each block is bytes holding one or more whole lines in file order, split
    at newlines only, so a reader can search a block with bytes methods instead
    of looking at every line. ``end`` should be a line boundary.
    """
    pos = end
    carry = b""
    while pos > start:
        block_start = max(start, pos - chunk_size)
        f.seek(block_start)
        data = f.read(pos - block_start) + carry
        pos = block_start
        if pos > start:
            # The first piece may continue in the block before this one.
            cut = data.find(b"\n")
            if cut < 0:
                carry = data
                continue
            carry, data = data[:cut], data[cut + 1 :]
        yield data


def read_lines_backwards(f, end, start=0, chunk_size=CHUNK_SIZE):
    """Yield ``(offset, line)`` for each line of ``f[start:end]``, last line first.

    ``end`` should be a line boundary (see `complete_end`); bytes between the
    last newline and ``end`` come out as a line of their own. Lines are bytes
    without their newline, so a multi-byte UTF-8 character split across two
    blocks is whole again before anyone decodes it. Empty lines are skipped.
    Memory holds one block plus the longest line.
    """
    block_end = end
    for block in read_blocks_backwards(f, end, start, chunk_size):
        block_start = block_end - len(block)
        cursor = len(block)
        for line in reversed(block.split(b"\n")):
            cursor -= len(line)
            if line:
                yield block_start + cursor, line
            cursor -= 1
        # Blocks are cut at a newline that belongs to neither of them.
        block_end = block_start - 1
