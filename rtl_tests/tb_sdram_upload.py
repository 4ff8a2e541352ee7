"""cocotb testbench of ``rtl_tests/test_sdram_upload.py``: the host's side of an SDRAM upload, in raw
frames on the UART pins, against the host link, the SDRAM bridge, LiteDRAM and the chip model (see
the test module for the sequence)."""

from __future__ import annotations

import random

import cocotb
from cocotb.triggers import ClockCycles

from spikegate.host import FrameParser, encode_frame, encode_pixels
from spikegate.machine.host_protocol import (ERROR_RESPONSE, INFO_LENGTH, INFO_SDRAM, INFO_SDRAM_VERIFIED,
                                             PROTOCOL_VERSION_SDRAM, RESPONSE_FLAG, Cmd, Err, sdram_crc)
from spikegate.rtl_tests.cocotb_util import UARTSink, UARTSource, tb_config, tb_seed
from spikegate.rtl_tests.tb_sdram_bridge import start_sdram_side
from spikegate.rtl_tests.toy_core import toy_model


class Host:
    """Frames out on ``rx``, the one answering frame back from ``tx``, each within a cycle budget."""

    def __init__(self, dut, cfg, rng):
        self.dut, self.cfg, self.rng = dut, cfg, rng
        self.src = UARTSource(dut.clk, dut.rx, cfg["divisor"])
        self.sink = UARTSink(dut.clk, dut.tx, cfg["divisor"])
        self.byte_cycles = 10 * cfg["divisor"]

    async def exchange(self, cmd: int, payload: bytes = b"", budget: int | None = None) -> tuple[int, bytes]:
        frame = encode_frame(cmd, payload)
        for b in frame:
            await self.src.write_byte(b)
            if self.rng.random() < 0.2:      # a host's bytes need not be back to back
                await ClockCycles(self.dut.clk, self.rng.randint(1, 30))
        parser = FrameParser()
        budget = budget or 200 * self.byte_cycles
        waited = 0
        while True:
            while self.sink.queue.empty():
                await ClockCycles(self.dut.clk, self.cfg["divisor"])
                waited += self.cfg["divisor"]
                assert waited < budget, f"TIMEOUT: no complete response to {Cmd(cmd).name} within {budget} cycles"
            frames = parser.feed(bytes([self.sink.queue.get_nowait()]))
            if frames:
                assert len(frames) == 1 and not parser.pending and not parser.skipped, frames
                assert not self.sink.errors, self.sink.errors
                return frames[0]

    async def ok(self, cmd: int, payload: bytes = b"", **kw) -> bytes:
        code, body = await self.exchange(cmd, payload, **kw)
        assert code == cmd | RESPONSE_FLAG, \
            f"{Cmd(cmd).name}: response {code:#04x} {body.hex()} ({_err(body)}), expected success"
        return body

    async def error(self, cmd: int, payload: bytes, err: int, what: str):
        code, body = await self.exchange(cmd, payload)
        assert (code, body) == (ERROR_RESPONSE, bytes([err, cmd])), \
            f"{what}: response {code:#04x} {body.hex()} ({_err(body)}), expected ERROR {Err(err).name}"

    async def flags(self) -> int:
        info = await self.ok(Cmd.INFO)
        assert info[0] == PROTOCOL_VERSION_SDRAM and len(info) == INFO_LENGTH + 6, info.hex()
        return info[INFO_LENGTH]

    async def load(self, words: list[int], offset: int):
        body = await self.ok(Cmd.LOAD_SDRAM, offset.to_bytes(4, "little") + _bytes(words))
        assert int.from_bytes(body, "little") == offset + len(words), \
            f"LOAD_SDRAM of words {offset}.. acknowledged {int.from_bytes(body, 'little')}"

    async def check(self, count: int, crc: int) -> int:
        body = await self.ok(Cmd.CHECK_SDRAM, count.to_bytes(4, "little") + crc.to_bytes(4, "little"),
                             budget=200 * self.byte_cycles + 50 * count)
        return int.from_bytes(body, "little")


def _err(body: bytes) -> str:
    try:
        return Err(body[0]).name if len(body) == 2 else ""
    except ValueError:
        return ""


def _bytes(words) -> bytes:
    return b"".join(w.to_bytes(2, "little") for w in words)


async def _start(dut, cfg):
    dut.rx.value = 1
    await start_sdram_side(dut, cfg, margin=2000)


@cocotb.test()
async def upload_and_check(dut):
    cfg, seed = tb_config(), tb_seed()
    rng = random.Random(seed)
    print(f"tb_sdram_upload: seed {seed} (SPIKEGATE_TB_SEED={seed} reruns it)")
    await _start(dut, cfg)
    host = Host(dut, cfg, rng)
    n = cfg["words"]
    image = [rng.randrange(1 << 16) for _ in range(n)]
    pixels = [rng.randrange(-128, 128) for _ in range(cfg["num_pixels"])]
    crc = sdram_crc(_bytes(image))

    assert await host.flags() & (INFO_SDRAM | INFO_SDRAM_VERIFIED) == INFO_SDRAM, "verified at power-up"
    await host.ok(Cmd.LOAD, encode_pixels(pixels, cfg["pixel_bits"]))
    await host.error(Cmd.START, b"", Err.WEIGHTS_NOT_VERIFIED, "START before any upload")

    # the image in random chunks, refused frames between them (words are written as they arrive,
    # so a refused LOAD_SDRAM writes the words before its fault: here the image's own)
    offset, written = 0, 0
    while offset < n:
        k = min(n - offset, rng.randint(1, n // 3))
        await host.load(image[offset:offset + k], offset)
        offset, written = offset + k, written + k
        if rng.random() < 0.5:
            bad = rng.choice(["past-end", "half-word", "zero-count", "offset-past-end"])
            j = rng.randrange(n)
            if bad == "past-end":       # the last word, and one more
                await host.error(Cmd.LOAD_SDRAM, (n - 1).to_bytes(4, "little") + _bytes([image[n - 1], 0]),
                                 Err.BAD_LENGTH, bad)
            elif bad == "half-word":    # a word, and half of another
                await host.error(Cmd.LOAD_SDRAM, j.to_bytes(4, "little") + _bytes([image[j]]) + b"\x01",
                                 Err.BAD_LENGTH, bad)
            elif bad == "offset-past-end":
                await host.error(Cmd.LOAD_SDRAM, n.to_bytes(4, "little") + _bytes([0]), Err.BAD_LENGTH, bad)
                written -= 1
            else:
                await host.error(Cmd.CHECK_SDRAM, bytes(4) + crc.to_bytes(4, "little"), Err.BAD_LENGTH, bad)
                written -= 1
            written += 1
    assert not await host.flags() & INFO_SDRAM_VERIFIED, "verified before any check"

    # a wrong expectation, then a prefix: the device's CRC is the data's, but neither verifies
    got = await host.check(n, crc ^ 1)
    assert got == crc, f"CHECK_SDRAM read back CRC {got:#010x}, the image's is {crc:#010x}"
    assert not await host.flags() & INFO_SDRAM_VERIFIED, "verified by a check whose CRC did not match"
    await host.error(Cmd.START, b"", Err.WEIGHTS_NOT_VERIFIED, "START after a failed check")
    p = rng.randint(1, n - 1)
    got = await host.check(p, sdram_crc(_bytes(image[:p])))
    assert got == sdram_crc(_bytes(image[:p])), f"CHECK_SDRAM of {p} words: CRC {got:#010x}"
    assert not await host.flags() & INFO_SDRAM_VERIFIED, f"verified by a check of {p} of {n} words"

    # the whole image: verified, START runs
    assert await host.check(n, crc) == crc
    assert await host.flags() & INFO_SDRAM_VERIFIED, "not verified after a matching check"
    await host.ok(Cmd.START)
    await ClockCycles(dut.clk, 200)
    result = await host.ok(Cmd.READ)
    want = toy_model(pixels, num_classes=cfg["num_classes"], logit_bits=cfg["logit_bits"])
    logits = [int.from_bytes(result[2 + 4 * i:6 + 4 * i], "little", signed=True) for i in range(cfg["num_classes"])]
    assert logits == want, f"logits {logits}, toy model {want}"

    # one word changed: unverified, and the read-back CRC changes with it
    i = rng.randrange(n)
    await host.load([image[i] ^ 0x8000], i)
    assert not await host.flags() & INFO_SDRAM_VERIFIED, "still verified after a write"
    await host.error(Cmd.START, b"", Err.WEIGHTS_NOT_VERIFIED, "START after a write")
    changed = image[:i] + [image[i] ^ 0x8000] + image[i + 1:]
    got = await host.check(n, crc)
    assert got == sdram_crc(_bytes(changed)) != crc, f"word {i} changed: read-back CRC {got:#010x}"
    assert not await host.flags() & INFO_SDRAM_VERIFIED
    await host.load([image[i]], i)
    assert await host.check(n, crc) == crc
    assert await host.flags() & INFO_SDRAM_VERIFIED
    await host.ok(Cmd.START)

    violations, writes, reads = (int(dut.violations.value), int(dut.writes.value), int(dut.reads.value))
    print(f"tb_sdram_upload: {n} words, chip writes {writes}, reads {reads}, {violations} timing violations")
    assert violations == 0, f"the chip model saw {violations} timing violations (see sim.log)"
    assert writes == written + 2, f"the chip saw {writes} writes, {written + 2} words were sent"
