"""The accelerator's port multiplexers: each memory port driven by the engine of the running opcode.

Engines never own the shared memories; each drives its own view of the ports it uses
(:func:`port_clients`), and :class:`PortMux` passes to a memory's port the view of the engine
whose opcode runs (the sequencer's ``sel`` flip-flops), and to every reader the port's word.
After a reset, while the sequencer clears ACC, the clearing writes take ACC's write ports.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikegate.machine.config import MachineConfig

from .accel_memories import memory_ports
from .sequencer import ENGINE_FLAGS, ENGINE_OPCODES

__all__ = ["PORT_CLIENTS", "PortMux", "engine_ports", "port_clients", "port_lanes"]

# each memory port (memory_ports) the engines use, and those engines (ENGINE_OPCODES' names) in the
# order the multiplexer tests their selects; at most one select is high at a time
PORT_CLIENTS = {
    "act_r": ("conv", "lif", "sum"),
    "act_w": ("inp", "conv", "attn", "sum"),
    "spk_r": ("conv", "attn"),
    "spk_w": ("lif",),
    "acc_r": ("conv", "out"),
    "acc_w": ("conv", "out"),
    "wmem_r": ("conv",),
    "bias_r": ("conv",),
    "shift_r": ("conv",),
    "thresh_r": ("lif",),
}
# the ports CONV's fire mode adds (hw/conv_readout.py), after their other client
FIRE_PORTS = ("spk_w", "thresh_r")


def port_clients(cfg: MachineConfig) -> dict:
    """:data:`PORT_CLIENTS` for the program of ``cfg``: when a CONV of it fires
    (``MachineConfig.fires``), the readout writes SPK and reads THRESH, so ``conv`` is a second
    client of those ports; otherwise the table as it is (and the netlist it always gave)."""
    if not cfg.fires:
        return PORT_CLIENTS
    return {port: users + ("conv",) if port in FIRE_PORTS else users for port, users in PORT_CLIENTS.items()}


def engine_ports(cfg: MachineConfig, engine: str) -> wiring.Signature:
    """The memory ports ``engine`` uses, as the engine's own signature declares them."""
    ports = memory_ports(cfg)
    return wiring.Signature({port: ports[port] for port, users in port_clients(cfg).items() if engine in users})


def port_lanes(interface, name: str) -> list:
    """``interface``'s port ``name`` as a list: ACC's one per lane (an array member), any other alone."""
    port = getattr(interface, name)
    return list(port) if interface.signature.members[name].dimensions else [port]


class PortMux(wiring.Component):
    """Members: ``sel`` (In, per engine: whether the running instruction is one of its opcodes),
    ``clearing`` and ``clr_addr`` (In: ACC's clearing writes after a reset), per engine (``inp``,
    ``conv``, ...) its :func:`engine_ports` (flipped: connect the engine's ports), and per memory
    port of :func:`port_clients` its :func:`~spikegate.hw.accel_memories.memory_ports` member
    (connect the memories' ports)."""

    def __init__(self, cfg: MachineConfig):
        self._cfg = cfg
        ports = memory_ports(cfg)
        members = {"sel": In(ENGINE_FLAGS), "clearing": In(1), "clr_addr": In(range(cfg.acc_words))}
        # per engine its ports seen from this side (flipped member by member: Amaranth cannot flip
        # an interface holding an array, ACC's ports)
        members.update({name: Out(wiring.Signature({port: member.flip() for port, member
                                                    in engine_ports(cfg, name).members.items()}))
                        for name in ENGINE_OPCODES})
        members.update({port: ports[port] for port in port_clients(cfg)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        # ACT's write registered: four writers, and ACT's block RAMs (the largest memory after
        # WMEM) spread wide, so that their mux and its route in one cycle were the ECP5's critical
        # path. With the deep pipeline SPK's write registered too: the LIF's spike (the ACT bank
        # mux, the membrane's adder and the threshold compare) and the route to SPK's block RAM in
        # one cycle were the ECP5's critical path once ACT's words were registered behind its
        # block RAMs
        registered = {"act_w": "act_w", "spk_w": "spk_w" if self._cfg.taken else None}
        for port, users in port_clients(self._cfg).items():
            views = [port_lanes(getattr(self, user), port) for user in users]
            for p, mem_port in enumerate(port_lanes(self, port)):
                clients = [(self.sel[user], view[p]) for user, view in zip(users, views)]
                if port.endswith("_r"):
                    self._share_read(m, mem_port, clients)
                else:
                    self._share_write(m, mem_port, clients, registered.get(port))
        with m.If(self.clearing):
            for w in self.acc_w:
                m.d.comb += [w.addr.eq(self.clr_addr), w.data.eq(0), w.en.eq(1)]
        return m

    @staticmethod
    def _share_read(m, port, clients):
        # the port's inputs: address and enable, and with ``take`` (read_sig) its register's enable
        inputs = ("addr", "en") + (("take",) if hasattr(port, "take") else ())
        if len(clients) == 1:
            # a port's only reader: no mux in front of the block RAM (a read has no side
            # effect, and only that engine takes the word)
            m.d.comb += [getattr(port, n).eq(getattr(clients[0][1], n)) for n in inputs]
            m.d.comb += clients[0][1].data.eq(port.data)
            return
        m.d.comb += port.en.eq(0)
        for _, c in clients:
            m.d.comb += c.data.eq(port.data)
        for i, (cond, c) in enumerate(clients):
            with (m.If if i == 0 else m.Elif)(cond):
                m.d.comb += [getattr(port, n).eq(getattr(c, n)) for n in inputs]

    @staticmethod
    def _share_write(m, port, clients, registered=None):
        """``port`` written by the client whose condition holds; with ``registered`` (a name)
        the selected write goes to the port a cycle later, from registers (an engine's last
        write then lands after its ``done``, still cycles before the next instruction's first
        read)"""
        if registered:
            q = SimpleNamespace(addr=Signal.like(port.addr, name=f"{registered}_addr_q"),
                                data=Signal.like(port.data, name=f"{registered}_data_q"),
                                en=Signal(name=f"{registered}_en_q"))
            m.d.comb += [port.addr.eq(q.addr), port.data.eq(q.data), port.en.eq(q.en)]
            sel_w = SimpleNamespace(addr=Signal.like(port.addr), data=Signal.like(port.data), en=Signal())
            m.d.sync += [q.addr.eq(sel_w.addr), q.data.eq(sel_w.data), q.en.eq(sel_w.en)]
            port = sel_w
        m.d.comb += port.en.eq(0)
        for i, (cond, c) in enumerate(clients):
            with (m.If if i == 0 else m.Elif)(cond):
                m.d.comb += [port.addr.eq(c.addr), port.data.eq(c.data), port.en.eq(c.en)]
