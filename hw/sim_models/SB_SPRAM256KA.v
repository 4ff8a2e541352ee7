// Behavioural simulation model of the Lattice iCE40 UltraPlus single-port RAM SB_SPRAM256KA, for
// cocotb runs (Icarus Verilog, Verilator) of designs that instantiate it (hw/spram.py). Written
// from the documented behaviour (Lattice TN1314, "iCE40 SPRAM Usage Guide": 16K x 16 bits, one
// clock, synchronous read and write, nibble write masks, power-save inputs); not for synthesis
// (Yosys maps the name to the hard block).
//
//  * CHIPSELECT high, WREN low at a rising CLOCK: DATAOUT <= mem[ADDRESS] (the registered read:
//    data valid one clock after the address).
//  * CHIPSELECT high, WREN high: the nibbles of DATAIN whose MASKWREN bit is set are written to
//    mem[ADDRESS] (MASKWREN[n] enables bits [4n+3:4n]); DATAOUT is not defined by the
//    documentation for a write cycle: X here, so a design that relies on it fails in simulation.
//  * CHIPSELECT low: no access; DATAOUT keeps its value.
//  * STANDBY high: no access, contents kept; DATAOUT undefined (X).
//  * SLEEP high: contents kept, DATAOUT pulled low.
//  * POWEROFF low (it is active low): the memory core is off and loses its contents (X).
//  * After configuration the contents are undefined (X): SPRAM is not initialised by the bitstream.
`default_nettype none

module SB_SPRAM256KA (
    input  wire [13:0] ADDRESS,
    input  wire [15:0] DATAIN,
    input  wire [3:0]  MASKWREN,
    input  wire        WREN,
    input  wire        CHIPSELECT,
    input  wire        CLOCK,
    input  wire        STANDBY,
    input  wire        SLEEP,
    input  wire        POWEROFF,
    output reg  [15:0] DATAOUT
);
    // (mem is written with blocking assignments: only this block reads it, and never in a cycle
    // that writes it)
    reg [15:0] mem [0:16383];
    integer i;

    initial begin
        for (i = 0; i < 16384; i = i + 1)
            mem[i] = 16'bx;
        DATAOUT = 16'bx;
    end

    always @(posedge CLOCK) begin
        if (!POWEROFF) begin
            for (i = 0; i < 16384; i = i + 1)
                mem[i] = 16'bx;
            DATAOUT <= 16'b0;
        end else if (SLEEP) begin
            DATAOUT <= 16'b0;
        end else if (STANDBY) begin
            DATAOUT <= 16'bx;
        end else if (CHIPSELECT) begin
            if (WREN) begin
                if (MASKWREN[0]) mem[ADDRESS][3:0]   = DATAIN[3:0];
                if (MASKWREN[1]) mem[ADDRESS][7:4]   = DATAIN[7:4];
                if (MASKWREN[2]) mem[ADDRESS][11:8]  = DATAIN[11:8];
                if (MASKWREN[3]) mem[ADDRESS][15:12] = DATAIN[15:12];
                DATAOUT <= 16'bx;
            end else begin
                DATAOUT <= mem[ADDRESS];
            end
        end
    end
endmodule

`default_nettype wire
