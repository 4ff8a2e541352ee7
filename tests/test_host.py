"""The host client (``spikegate.host``) and ``spikegate run``, against a simulated device.

The device is ``ProtocolModel`` (the protocol in Python) behind a pseudo-terminal, served by a
thread: the client opens the pty's path with pyserial exactly as it would open /dev/ttyUSB1. Fault
modes make the device silent, corrupt its checksums, cut responses short, or babble.
(The gateware side of the same protocol is tested in rtl_tests/test_host_link.py.)
"""

from __future__ import annotations

import json
import os
import select
import threading
import tty

import numpy as np
import pytest

from spikegate.cli import main
from spikegate.errors import SpikegateError
from spikegate.host import (Device, DeviceError, DeviceTimeout, FrameError, FrameParser,
                             ProtocolModel, encode_frame, encode_pixels)
from spikegate.machine.host_protocol import Cmd, Err, info_payload
from spikegate.quantize.intops import quantize_input
from spikegate.rtl_tests.toy_core import toy_model, write_toy_build

NPIX, NCLS, PBITS, LBITS = 16, 4, 8, 16
CLK_HZ = 30_000_000


def toy_compute(pixels):
    return toy_model(pixels, num_classes=NCLS, logit_bits=LBITS), 1000 + sum(abs(p) for p in pixels)


def make_model(**kw):
    return ProtocolModel(num_pixels=NPIX, num_classes=NCLS, pixel_bits=PBITS, logit_bits=LBITS,
                         compute=toy_compute, clk_hz=CLK_HZ, **kw)


class PtyDevice:
    """Serves a ProtocolModel on a pty. ``mode``: ok, silent, corrupt, truncate, babble."""

    def __init__(self, model, mode="ok", byte_timeout=0.2):
        self.model, self.mode, self.byte_timeout = model, mode, byte_timeout
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.received = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], self.byte_timeout)
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    return
                self.received += data
                out = self.model.feed(data)
            else:
                out = self.model.timeout()
            if out and self.mode != "silent":
                os.write(self.master, self._mangle(out))

    def _mangle(self, out: bytes) -> bytes:
        if self.mode == "corrupt":
            return out[:-1] + bytes([out[-1] ^ 0x5A])
        if self.mode == "truncate":
            return out[:3]
        if self.mode == "babble":
            return bytes(200) + out
        return out

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self.master)
        os.close(self._slave)


@pytest.fixture
def device():
    devs = []

    def make(mode="ok", **kw):
        d = PtyDevice(make_model(**kw), mode=mode)
        devs.append(d)
        return d
    yield make
    for d in devs:
        d.close()


# ------------------------------------------------------------------------------ frames, pixels


def test_frame_encoding_and_parsing():
    f = encode_frame(Cmd.LOAD, bytes([1, 2, 0xA5]))
    assert f == bytes([0xA5, 0x02, 3, 0, 1, 2, 0xA5, (2 + 3 + 1 + 2 + 0xA5) & 0xFF])
    p = FrameParser()
    assert p.feed(b"\x00\x13" + f[:5]) == []
    assert p.skipped == 2
    assert p.feed(f[5:] + encode_frame(0x81)) == [(0x02, bytes([1, 2, 0xA5])), (0x81, b"")]
    bad = bytearray(encode_frame(0x84, b"xyz"))
    bad[-1] ^= 1
    with pytest.raises(FrameError, match="bad checksum"):
        FrameParser().feed(bytes(bad))


def test_pixel_encoding():
    assert encode_pixels([-1, 5, -128, 127], 8) == bytes([0xFF, 5, 0x80, 0x7F])
    assert encode_pixels([-2, 300], 12) == bytes([0xFE, 0xFF, 0x2C, 0x01])
    with pytest.raises(SpikegateError, match=r"^pixel 1 = 128 does not fit 8 signed bits \(-128\.\.127\)$"):
        encode_pixels([0, 128], 8)


def test_model_follows_the_protocol():
    m = make_model()
    assert m.feed(encode_frame(Cmd.START)) == encode_frame(0xFF, bytes([Err.NOT_LOADED, Cmd.START]))
    assert m.feed(encode_frame(Cmd.READ)) == encode_frame(0xFF, bytes([Err.NO_RESULT, Cmd.READ]))
    assert m.feed(encode_frame(Cmd.INFO)) == encode_frame(0x81, info_payload(
        num_pixels=NPIX, num_classes=NCLS, pixel_bits=PBITS, logit_bits=LBITS, clk_hz=CLK_HZ))
    assert m.feed(encode_frame(0x42)) == encode_frame(0xFF, bytes([Err.UNKNOWN_CMD, 0x42]))
    assert m.feed(encode_frame(Cmd.LOAD, bytes(3))) == encode_frame(0xFF, bytes([Err.BAD_LENGTH, Cmd.LOAD]))
    assert m.feed(encode_frame(Cmd.LOAD, bytes(NPIX))[:6]) == b""
    assert m.timeout() == encode_frame(0xFF, bytes([Err.TIMEOUT, Cmd.LOAD]))
    assert m.timeout() == b""


# ------------------------------------------------------------------------------ client on a pty


def test_infer_over_pty(device):
    d = device(busy_reads=3)
    rng = np.random.default_rng(7)
    with Device.open(d.path, timeout=2) as dev:
        info = dev.info()
        assert (info.num_pixels, info.num_classes, info.pixel_bits, info.logit_bits, info.clk_hz) == \
            (NPIX, NCLS, PBITS, LBITS, CLK_HZ)
        for _ in range(5):
            img = [int(v) for v in rng.integers(-128, 128, NPIX)]
            r = dev.infer(img)
            logits, cycles = toy_compute(img)
            assert r.logits == logits
            assert r.cls == logits.index(max(logits))
            assert r.cycles == cycles
            assert r.latency_us(info.clk_hz) == pytest.approx(cycles / 30)
            assert r.wall_s > 0
        # all equal: the first maximum wins
        assert dev.infer([1] * NPIX).cls == 0


def test_device_errors_are_reported(device):
    d = device()
    with Device.open(d.path, timeout=2) as dev:
        with pytest.raises(DeviceError, match=r"^device refused START: no image loaded$") as e:
            dev.start()
        assert (e.value.code, e.value.cmd) == (Err.NOT_LOADED, Cmd.START)
        with pytest.raises(DeviceError, match=r"^device refused READ: no result yet$"):
            dev.read()
        with pytest.raises(SpikegateError, match=r"^an image has 3 pixels; the device takes 16$"):
            dev.load([0, 0, 0])


def test_busy_for_too_long_times_out(device):
    d = device(busy_reads=10**6)
    with Device.open(d.path, timeout=0.5) as dev:
        dev.load([0] * NPIX)
        dev.start()
        with pytest.raises(DeviceTimeout, match=r"still busy after 0\.3 s$"):
            dev.read(wait_s=0.3)


@pytest.mark.parametrize("mode, error, message", [
    ("silent", DeviceTimeout, r"no response to INFO in 0\.5 s \(board not programmed, wrong port or baud rate\?\)$"),
    ("truncate", DeviceTimeout, r"incomplete response to INFO \(3 bytes in 0\.5 s\)$"),
    ("corrupt", FrameError, r"bad checksum"),
    ("babble", FrameError, r"bytes of garbage instead of a response to INFO \(wrong baud rate"),
])
def test_broken_devices_give_clear_errors(device, mode, error, message):
    d = device(mode=mode)
    with Device.open(d.path, timeout=0.5) as dev:
        with pytest.raises(error, match=message):
            dev.info()


def test_open_missing_port():
    with pytest.raises(SpikegateError, match=r"^cannot open /dev/does-not-exist: "):
        Device.open("/dev/does-not-exist")


# ------------------------------------------------------------------------------ spikegate run


def test_run_command_quantises_and_reports(device, tmp_path, capsys):
    d = device(busy_reads=1)
    build = write_toy_build(str(tmp_path / "build"), target="icebreaker", num_pixels=NPIX,
                            num_classes=NCLS, pixel_bits=PBITS, logit_bits=LBITS, input_scale=100.0)
    x = np.random.default_rng(3).uniform(-1.5, 1.5, (3, 1, 4, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    rc = main(["run", "--port", d.path, "--inputs", str(tmp_path / "x.npy"), "--build", build,
               "--timeout", "2", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["device"]["clk_hz"] == CLK_HZ
    q = quantize_input(x.reshape(3, -1), 100.0, PBITS)
    assert q.min() == -128 and q.max() == 127    # clipping happened
    for row, img in zip(out["results"], q):
        logits, cycles = toy_compute([int(v) for v in img])
        assert row["logits"] == logits and row["cycles"] == cycles
        assert row["class"] == logits.index(max(logits))
        assert row["latency_us"] == pytest.approx(cycles / 30, abs=1e-3)

    # integers go as they are, without --build; human-readable output
    np.save(tmp_path / "xi.npy", np.arange(-8, 8, dtype=np.int16).reshape(1, 16))
    assert main(["run", "--port", d.path, "--inputs", str(tmp_path / "xi.npy")]) == 0
    text = capsys.readouterr().out
    logits, cycles = toy_compute(list(range(-8, 8)))
    assert f"input 0: class {logits.index(max(logits))}  logits {logits}  cycles {cycles}" in text
    assert "at 30 MHz" in text


@pytest.mark.parametrize("array, extra, message", [
    (np.zeros((2, 1, 4, 4), np.float32), [], r"holds floats: give --build BUILD_DIR"),
    (np.zeros((2, 15), np.int8), [], r"images have 15 values \(shape \(2, 15\)\); the device takes 16"),
    (np.full((1, 16), 200, np.int16), [], r"integer pixels span 200\.\.200; the device takes 8-bit"),
    (np.zeros((1, 16), np.int8), ["--timeout", "0"], r"--timeout must be in \(0, 3600\] seconds"),
])
def test_run_command_user_errors(device, tmp_path, capsys, array, extra, message):
    d = device()
    np.save(tmp_path / "x.npy", array)
    rc = main(["run", "--port", d.path, "--inputs", str(tmp_path / "x.npy"), *extra])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("spikegate run: error: ")
    assert __import__("re").search(message, err), err


def test_run_command_detects_another_build(device, tmp_path, capsys):
    d = device()
    build = write_toy_build(str(tmp_path / "b"), num_pixels=NPIX, num_classes=10, pixel_bits=PBITS,
                            logit_bits=LBITS)
    np.save(tmp_path / "x.npy", np.zeros((1, 16), np.int8))
    assert main(["run", "--port", d.path, "--inputs", str(tmp_path / "x.npy"), "--build", build]) == 2
    assert "runs a different build: num_classes 4, " in capsys.readouterr().err


def test_run_command_without_a_device(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 16), np.int8))
    master, slave = os.openpty()   # a port nobody answers on
    try:
        assert main(["run", "--port", os.ttyname(slave), "--inputs", str(tmp_path / "x.npy"),
                     "--timeout", "0.3"]) == 2
    finally:
        os.close(master)
        os.close(slave)
    assert "no response to INFO in 0.3 s" in capsys.readouterr().err


# ------------------------------------------------------------------------------ runtime weights

NWORDS, WBITS = 300, 12         # 2 bytes per word: little-endian, the top 4 bits dropped


def toy_compute_w(pixels, weights):
    """The toy core plus the first NCLS weights as per-class offsets (so the upload matters)."""
    logits, cycles = toy_compute(pixels)
    return [v + int(w) for v, w in zip(logits, weights[:NCLS])], cycles


def make_weight_model(**kw):
    return ProtocolModel(num_pixels=NPIX, num_classes=NCLS, pixel_bits=PBITS, logit_bits=LBITS,
                         compute=toy_compute_w, clk_hz=CLK_HZ, weight_words=NWORDS, weight_bits=WBITS, **kw)


def weight_image(seed=5):
    rng = np.random.default_rng(seed)
    words = [int(v) for v in rng.integers(0, 1 << WBITS, NWORDS)]
    return words, b"".join(w.to_bytes(2, "little") for w in words)


def wl_frame(offset, words):
    return encode_frame(Cmd.LOAD_WEIGHTS, offset.to_bytes(4, "little") +
                        b"".join(w.to_bytes(2, "little") for w in words))


def test_weight_model_follows_the_protocol():
    from spikegate.host import DeviceInfo

    m = make_weight_model()
    err = lambda code, cmd: encode_frame(0xFF, bytes([code, cmd]))   # noqa: E731
    info = DeviceInfo.decode(m.feed(encode_frame(Cmd.INFO))[4:-1])
    assert (info.version, info.runtime_weights, info.weights_loaded, info.weights_needed) == (2, True, False, True)
    assert (info.weight_words, info.weight_bytes_per_word, info.num_pixels) == (NWORDS, 2, NPIX)
    assert m.feed(encode_frame(Cmd.LOAD, bytes(NPIX))) == encode_frame(0x82)      # pixels: fine
    assert m.feed(encode_frame(Cmd.START)) == err(Err.WEIGHTS_NOT_LOADED, Cmd.START)
    words, _ = weight_image()
    # lengths: no whole word, a partial word, past the end; then offsets: neither 0 nor the end
    assert m.feed(encode_frame(Cmd.LOAD_WEIGHTS, bytes(5))) == err(Err.BAD_LENGTH, Cmd.LOAD_WEIGHTS)
    assert m.feed(encode_frame(Cmd.LOAD_WEIGHTS, bytes(7))) == err(Err.BAD_LENGTH, Cmd.LOAD_WEIGHTS)
    assert m.feed(wl_frame(NWORDS - 1, [1, 2])) == err(Err.BAD_LENGTH, Cmd.LOAD_WEIGHTS)
    assert m.feed(wl_frame(7, [1])) == err(Err.BAD_OFFSET, Cmd.LOAD_WEIGHTS)
    assert m.feed(wl_frame(0, words[:100])) == encode_frame(0x85, (100).to_bytes(4, "little"))
    assert m.feed(wl_frame(50, [1])) == err(Err.BAD_OFFSET, Cmd.LOAD_WEIGHTS)
    assert m.feed(wl_frame(100, words[100:200])) == encode_frame(0x85, (200).to_bytes(4, "little"))
    # a chunk that stops arriving: the words from its offset on are no longer trusted
    assert m.feed(wl_frame(200, words[200:])[:30]) == b""
    assert m.timeout() == err(Err.TIMEOUT, Cmd.LOAD_WEIGHTS)
    assert m.feed(wl_frame(300, [])) == err(Err.BAD_LENGTH, Cmd.LOAD_WEIGHTS)
    assert m.feed(wl_frame(200, words[200:])) == encode_frame(0x85, (NWORDS).to_bytes(4, "little"))
    assert m.weights == words and m.weights_loaded
    assert DeviceInfo.decode(m.feed(encode_frame(Cmd.INFO))[4:-1]).weights_loaded
    assert m.feed(encode_frame(Cmd.START)) == encode_frame(0x83)
    # a bad checksum in a chunk starting at 0 unloads them all (words were already overwritten)
    bad = bytearray(wl_frame(0, words[:10]))
    bad[-1] ^= 1
    assert m.feed(bytes(bad)) == err(Err.BAD_CHECKSUM, Cmd.LOAD_WEIGHTS)
    assert not m.weights_loaded
    assert m.feed(wl_frame(10, words[10:])) == err(Err.BAD_OFFSET, Cmd.LOAD_WEIGHTS)
    # a device without runtime weights does not know the command
    assert make_model().feed(wl_frame(0, [1])) == err(Err.UNKNOWN_CMD, Cmd.LOAD_WEIGHTS)


def test_info_versions_are_checked():
    from spikegate.host import DeviceInfo

    v1 = info_payload(num_pixels=NPIX, num_classes=NCLS, pixel_bits=PBITS, logit_bits=LBITS)
    assert DeviceInfo.decode(v1).weights_needed is False
    with pytest.raises(FrameError, match=r"^INFO response has 20 bytes, expected 14 \(protocol version 1\)$"):
        DeviceInfo.decode(v1 + bytes(6))
    with pytest.raises(FrameError, match=r"^protocol version 4, this host speaks 1 and 2 and 3$"):
        DeviceInfo.decode(bytes([4]) + v1[1:])
    v3 = DeviceInfo.decode(info_payload(num_pixels=NPIX, num_classes=NCLS, pixel_bits=PBITS, logit_bits=LBITS,
                                        sdram_words=SWORDS, sdram_verified=False))
    assert (v3.version, v3.sdram, v3.sdram_verified, v3.weights_needed, v3.weight_words) == (3, True, False, True, SWORDS)


class FlakyPty(PtyDevice):
    """Flips one byte of the first long request it receives (a corrupted LOAD_WEIGHTS chunk)."""

    def _serve(self):
        flipped = False
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], self.byte_timeout)
            if ready:
                try:
                    data = bytearray(os.read(self.master, 4096))
                except OSError:
                    return
                if not flipped and len(data) > 40:
                    data[20] ^= 0x10
                    flipped = True
                out = self.model.feed(bytes(data))
            else:
                out = self.model.timeout()
            if out:
                os.write(self.master, out)


def test_load_weights_over_pty_with_a_retry():
    words, image = weight_image()
    d = FlakyPty(make_weight_model())
    try:
        seen = []
        with Device.open(d.path, timeout=2) as dev:
            with pytest.raises(DeviceError, match=r"^device refused START: weights not loaded") as e:
                dev.start()
            assert e.value.code == Err.WEIGHTS_NOT_LOADED
            with pytest.raises(SpikegateError, match=r"^the weight image has 599 bytes; the device takes "
                                                      r"300 words of 2 bytes \(600 bytes\): another build\?$"):
                dev.load_weights(image[:-1])
            info = dev.load_weights(image, chunk_bytes=128, progress=seen.append)
            assert info.weights_loaded and not info.weights_needed
            assert seen == [64] * 4 + [44] and d.model.weights == words
            img = list(range(NPIX))
            r = dev.infer(img)
            assert r.logits == toy_compute_w(img, words)[0]
    finally:
        d.close()


def test_load_weights_needs_a_runtime_weight_device(device):
    d = device()
    with Device.open(d.path, timeout=2) as dev:
        with pytest.raises(SpikegateError, match=r"weights are in its bitstream; it takes no LOAD_WEIGHTS$"):
            dev.load_weights(b"\x00\x00")


def _weight_build(tmp_path, image, **kw):
    import hashlib

    build = write_toy_build(str(tmp_path / "wbuild"), num_pixels=NPIX, num_classes=NCLS, pixel_bits=PBITS,
                            logit_bits=LBITS, extra={"weights": {
                                "loading": "runtime-loaded", "storage": "SPRAM", "words": NWORDS,
                                "word_bits": WBITS, "bytes_per_word": 2, "bits": NWORDS * WBITS,
                                "image": "weights.bin", "sha256": hashlib.sha256(image).hexdigest(), **kw}})
    (tmp_path / "wbuild" / "weights.bin").write_bytes(image)
    return build


def test_run_command_uploads_runtime_weights(tmp_path, capsys):
    words, image = weight_image()
    build = _weight_build(tmp_path, image)
    d = PtyDevice(make_weight_model(busy_reads=1))
    np.save(tmp_path / "xi.npy", np.arange(-8, 8, dtype=np.int16).reshape(1, 16))
    argv = ["run", "--port", d.path, "--inputs", str(tmp_path / "xi.npy"), "--timeout", "2"]
    try:
        assert main(argv) == 2            # without the build directory: nothing to upload from
        err = capsys.readouterr().err
        assert err == (f"spikegate run: error: the device on {d.path} needs its weights loaded (300 words, "
                       f"in SPRAM): give --build BUILD_DIR, whose weights.bin has them\n")

        assert main(argv + ["--build", build, "--json"]) == 0
        cap = capsys.readouterr()
        out = json.loads(cap.out)
        assert out["weights"]["uploaded"] is True and out["weights"]["words"] == NWORDS
        assert out["device"]["weights_loaded"] is True
        assert "weights: 300 words (600 bytes, sha256 " in cap.err
        assert d.model.weights == words
        logits, _ = toy_compute_w(list(range(-8, 8)), words)
        assert out["results"][0]["logits"] == logits

        # loaded already: no upload, unless asked for
        assert main(argv + ["--build", build, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["weights"] == {"uploaded": False, "words": NWORDS}
        assert main(argv + ["--build", build, "--json", "--load-weights"]) == 0
        assert json.loads(capsys.readouterr().out)["weights"]["uploaded"] is True
    finally:
        d.close()


def test_run_command_checks_the_weight_image(tmp_path, capsys):
    words, image = weight_image()
    d = PtyDevice(make_weight_model())
    np.save(tmp_path / "xi.npy", np.zeros((1, 16), np.int8))
    try:
        build = _weight_build(tmp_path, image, sha256="0" * 64)
        argv = ["run", "--port", d.path, "--inputs", str(tmp_path / "xi.npy"), "--build", build]
        assert main(argv) == 2
        assert "weights.bin: sha256 does not match report.json (modified?); recompile" in capsys.readouterr().err
        build = _weight_build(tmp_path, image, words=NWORDS + 1)
        assert main(argv) == 2
        assert "runs a different build: it takes 300 weight words of 2 bytes" in capsys.readouterr().err
        assert d.model.weights == [None] * NWORDS
    finally:
        d.close()


def test_run_command_runtime_build_on_a_bitstream_device(device, tmp_path, capsys):
    _, image = weight_image()
    build = _weight_build(tmp_path, image)
    d = device()
    np.save(tmp_path / "xi.npy", np.zeros((1, 16), np.int8))
    assert main(["run", "--port", d.path, "--inputs", str(tmp_path / "xi.npy"), "--build", build]) == 2
    assert "runs a different build: its weights are in its bitstream" in capsys.readouterr().err
    assert main(["run", "--port", d.path, "--inputs", str(tmp_path / "xi.npy"), "--load-weights"]) == 2
    assert "--load-weights: the device on" in capsys.readouterr().err


# ------------------------------------------------------------------------------ weights in SDRAM

SWORDS = 300


def toy_compute_s(pixels, sdram):
    """The toy core plus the first NCLS SDRAM words' low bytes as per-class offsets (so the upload
    matters; the logits stay within 16 bits)."""
    logits, cycles = toy_compute(pixels)
    return [v + (int(w) & 0xFF) for v, w in zip(logits, sdram[:NCLS])], cycles


def make_sdram_model(**kw):
    return ProtocolModel(num_pixels=NPIX, num_classes=NCLS, pixel_bits=PBITS, logit_bits=LBITS,
                         compute=toy_compute_s, clk_hz=CLK_HZ, sdram_words=SWORDS, **kw)


def sdram_image(seed=7):
    rng = np.random.default_rng(seed)
    words = [int(v) for v in rng.integers(0, 1 << 16, SWORDS)]
    return words, b"".join(w.to_bytes(2, "little") for w in words)


def sd_frame(offset, words):
    return encode_frame(Cmd.LOAD_SDRAM, offset.to_bytes(4, "little") + b"".join(w.to_bytes(2, "little") for w in words))


def ck_frame(count, crc):
    return encode_frame(Cmd.CHECK_SDRAM, count.to_bytes(4, "little") + crc.to_bytes(4, "little"))


def test_sdram_model_follows_the_protocol():
    """The Python device's LOAD_SDRAM/CHECK_SDRAM, rule by rule as docs/host-protocol.md states them
    (the gateware is held to the same rules by rtl_tests/test_sdram_upload.py)."""
    from spikegate.host import DeviceInfo
    from spikegate.machine.host_protocol import sdram_crc

    m = make_sdram_model()
    err = lambda code, cmd: encode_frame(0xFF, bytes([code, cmd]))   # noqa: E731
    ack = lambda cmd, v: encode_frame(cmd | 0x80, v.to_bytes(4, "little"))   # noqa: E731
    info = DeviceInfo.decode(m.feed(encode_frame(Cmd.INFO))[4:-1])
    assert (info.version, info.sdram, info.sdram_verified, info.weight_words) == (3, True, False, SWORDS)
    assert m.feed(encode_frame(Cmd.LOAD, bytes(NPIX))) == encode_frame(0x82)
    assert m.feed(encode_frame(Cmd.START)) == err(Err.WEIGHTS_NOT_VERIFIED, Cmd.START)
    words, image = sdram_image()
    crc = sdram_crc(image)
    # lengths: no word, half a word, offset past the end, words running past it; a check of 0 words
    for bad in (encode_frame(Cmd.LOAD_SDRAM, bytes(5)), encode_frame(Cmd.LOAD_SDRAM, bytes(7)),
                sd_frame(SWORDS, [1]), sd_frame(SWORDS - 1, [1, 2])):
        assert m.feed(bad) == err(Err.BAD_LENGTH, Cmd.LOAD_SDRAM)
    for bad in (ck_frame(0, crc), ck_frame(SWORDS + 1, crc), encode_frame(Cmd.CHECK_SDRAM, bytes(7))):
        assert m.feed(bad) == err(Err.BAD_LENGTH, Cmd.CHECK_SDRAM)
    # any order of chunks; a check over a prefix or with a wrong CRC does not verify
    assert m.feed(sd_frame(200, words[200:])) == ack(Cmd.LOAD_SDRAM, SWORDS)
    assert m.feed(sd_frame(0, words[:200])) == ack(Cmd.LOAD_SDRAM, 200)
    assert m.feed(ck_frame(10, sdram_crc(image[:20]))) == ack(Cmd.CHECK_SDRAM, sdram_crc(image[:20]))
    assert not m.sdram_verified
    assert m.feed(ck_frame(SWORDS, crc ^ 1)) == ack(Cmd.CHECK_SDRAM, crc) and not m.sdram_verified
    assert m.feed(ck_frame(SWORDS, crc)) == ack(Cmd.CHECK_SDRAM, crc) and m.sdram_verified
    assert DeviceInfo.decode(m.feed(encode_frame(Cmd.INFO))[4:-1]).sdram_verified
    assert m.feed(encode_frame(Cmd.START)) == encode_frame(0x83)
    # any write clears it, even one refused later (its words were written as they came)
    assert m.feed(sd_frame(SWORDS - 1, [words[-1], 0])) == err(Err.BAD_LENGTH, Cmd.LOAD_SDRAM)
    assert not m.sdram_verified and m.sdram == words
    assert m.feed(encode_frame(Cmd.START)) == err(Err.WEIGHTS_NOT_VERIFIED, Cmd.START)
    # other devices do not know the commands
    assert make_model().feed(sd_frame(0, [1])) == err(Err.UNKNOWN_CMD, Cmd.LOAD_SDRAM)
    assert make_weight_model().feed(ck_frame(1, 0)) == err(Err.UNKNOWN_CMD, Cmd.CHECK_SDRAM)


def _sdram_build(tmp_path, image, sha_of=None):
    import hashlib

    build = write_toy_build(str(tmp_path / "sbuild"), target="ulx3s-85f", num_pixels=NPIX, num_classes=NCLS,
                            pixel_bits=PBITS, logit_bits=LBITS, extra={"weights": {
                                "where": "sdram", "loading": "streamed", "external_image": "sdram.bin",
                                "external_sha256": hashlib.sha256(image if sha_of is None else sha_of).hexdigest()}})
    (tmp_path / "sbuild" / "sdram.bin").write_bytes(image)
    return build


def test_run_command_uploads_and_checks_sdram_weights(tmp_path, capsys):
    words, image = sdram_image()
    build = _sdram_build(tmp_path, image)
    d = PtyDevice(make_sdram_model(busy_reads=1))
    np.save(tmp_path / "xi.npy", np.arange(-8, 8, dtype=np.int16).reshape(1, 16))
    argv = ["run", "--port", d.path, "--inputs", str(tmp_path / "xi.npy"), "--timeout", "2"]
    try:
        assert main(argv) == 2            # without the build directory: nothing to upload from
        assert capsys.readouterr().err == (
            f"spikegate run: error: the device on {d.path} needs its weights in SDRAM (300 16-bit words, "
            f"not verified): give --build BUILD_DIR, whose sdram.bin has them\n")

        assert main(argv + ["--build", build, "--json"]) == 0
        cap = capsys.readouterr()
        out = json.loads(cap.out)
        assert out["weights"]["uploaded"] is True and out["weights"]["verified"] is True
        assert out["baud"] == 3_000_000           # not synthesised here: the ULX3S's rate
        assert out["device"]["sdram_verified"] is True
        assert "sdram: 300 words (600 bytes, sha256 " in cap.err and "CRC-32 matched" in cap.err
        assert d.model.sdram == words
        assert out["results"][0]["logits"] == toy_compute_s(list(range(-8, 8)), words)[0]

        # in SDRAM already (the read-back matches): no upload, unless asked for
        assert main(argv + ["--build", build, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["weights"]["uploaded"] is False
        assert main(argv + ["--build", build, "--json", "--load-weights"]) == 0
        assert json.loads(capsys.readouterr().out)["weights"]["uploaded"] is True
    finally:
        d.close()


@pytest.mark.parametrize("case", ["short", "corrupt", "bad-sdram", "bitstream-device"])
def test_run_command_refuses_a_bad_sdram_upload(case, tmp_path, capsys):
    """A short or modified sdram.bin is refused before anything is sent; an SDRAM that reads back
    wrong is refused after the upload; a build with SDRAM weights on another device is refused.
    One line each, exit 2, and no image runs."""
    words, image = sdram_image()
    model = make_model() if case == "bitstream-device" else \
        make_sdram_model(sdram_faults={17: 0x0400} if case == "bad-sdram" else {})
    build = _sdram_build(tmp_path, image[:-2] if case == "short" else image,
                         sha_of=image + b"x" if case == "corrupt" else None)
    d = PtyDevice(model)
    np.save(tmp_path / "xi.npy", np.zeros((1, 16), np.int8))
    try:
        assert main(["run", "--port", d.path, "--inputs", str(tmp_path / "xi.npy"), "--build", build]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        sdram_bin = os.path.join(build, "sdram.bin")
        assert err.removeprefix("spikegate run: error: ") == {
            "short": f"{sdram_bin}: 598 bytes, the device on {d.path} takes 300 16-bit words (600 bytes): another "
                     f"build?; recompile the build directory\n",
            "corrupt": f"{sdram_bin}: sha256 does not match report.json (modified?); recompile\n",
            "bad-sdram": f"{d.path}: the SDRAM read back as CRC-32 {_crc(words, {17: 0x0400}):#010x}, the image's "
                         f"is {_crc(words, {}):#010x}: the upload did not arrive intact (run again; if it "
                         f"persists, the board's SDRAM is at fault)\n",
            "bitstream-device": f"the device on {d.path} runs a different build: its weights are not in SDRAM, "
                                f"{build}'s are\n"}[case]
        assert model._result is None        # nothing ran
        if case in ("short", "corrupt"):
            assert model.sdram == [None] * SWORDS     # nothing was sent
    finally:
        d.close()


def _crc(words, faults):
    from spikegate.machine.host_protocol import sdram_crc
    return sdram_crc(b"".join((w ^ faults.get(i, 0)).to_bytes(2, "little") for i, w in enumerate(words)))
