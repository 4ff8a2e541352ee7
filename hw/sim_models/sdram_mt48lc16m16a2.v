// Behavioural simulation model of the Micron MT48LC16M16A2 (256 Mbit SDR SDRAM, x16: 4 banks x
// 8192 rows x 512 columns x 16 bits = 32 MB), the ULX3S's SDRAM, for cocotb runs on Icarus Verilog
// of the LiteDRAM core (board_targets/litedram_core.py). Written from the datasheet (Micron
// "256Mb: x4, x8, x16 SDRAM", MT48LC16M16A2 -75 speed grade: PC133 at CL3, 100 MHz at CL2); not
// for synthesis. It stores what is written and returns it, and it CHECKS the command timing it
// sees against the datasheet; every violation prints one "sdram model: VIOLATION" line and
// increments `violations` (the testbench asserts it stays 0).
//
// Commands (sampled at the rising CLK edge while CKE is high; CS# RAS# CAS# WE#):
//   H x x x  COMMAND INHIBIT        L H H H  NOP
//   L L H H  ACTIVE (BA, row A)     L H L H  READ (BA, col A[8:0], A10 = auto precharge)
//   L H L L  WRITE (same)           L H H L  BURST TERMINATE
//   L L H L  PRECHARGE (A10 = all)  L L L H  AUTO REFRESH
//   L L L L  LOAD MODE REGISTER (A[12:0] = mode)
// Mode register: M[2:0] burst length (0:1, 1:2, 2:4, 3:8; full page 7 is not modelled: flagged),
// M3 burst type (0 sequential, 1 interleaved), M[6:4] CAS latency (2 or 3), M[8:7] operating mode
// (00 standard; other values are reserved and leave the mode invalid until the next LOAD MODE:
// LiteDRAM's SDR power-up sequence writes M8 = 1 once before the real value), M9 write burst mode
// (0 programmed length, 1 single location).
//
// Read data: for a READ at edge n, word i of the burst is valid from tAC after edge n+CL-1+i until
// tOH after edge n+CL+i; in between (and when nothing is read) DQ is driven with X, so a
// controller that samples outside the window reads X and fails its compare. DQM masks a write beat
// at once and disables a read beat two clocks later (read DQM latency 2). Write data is taken at the
// WRITE edge (write latency 0) and the following edges of the burst.
//
// Timing checked (parameters in ns, compared with the simulation time between the clock edges that
// carried the commands, so any clock period works; T_MRD_CK and the CL limits are in clocks/ns):
//   tINIT  no command but NOP/INHIBIT for 100 us after the clock starts
//   init   no ACTIVE/READ/WRITE before a valid LOAD MODE and two AUTO REFRESHes
//   tRCD   ACTIVE -> READ/WRITE, same bank     tRAS  ACTIVE -> PRECHARGE (min and max)
//   tRC    ACTIVE -> ACTIVE, same bank          tRRD  ACTIVE -> ACTIVE, other bank
//   tRP    PRECHARGE -> ACTIVE/REFRESH/LMR      tRFC  AUTO REFRESH -> any command
//   tWR    last write beat -> PRECHARGE         tMRD  LOAD MODE -> any command (clocks)
//   CL     the programmed CAS latency is legal at the measured clock period (tCK(CL2)/tCK(CL3))
//   state  READ/WRITE to an idle bank, ACTIVE to an open bank, REFRESH/LMR with a bank open
//   tREF   8192 AUTO REFRESHes per 64 ms, distributed: once the device is initialised, the refreshes
//          given must keep up with one per tREF/8192 (7.8125 us), lagging at most REF_SLACK
//          intervals (a controller may postpone one while it closes its banks).
`timescale 1ns / 1ps
`default_nettype none

module sdram_mt48lc16m16a2 #(
    parameter real T_RCD_NS  = 20.0,
    parameter real T_RP_NS   = 20.0,
    parameter real T_RAS_NS  = 44.0,
    parameter real T_RAS_MAX_NS = 120000.0,
    parameter real T_RC_NS   = 66.0,
    parameter real T_RFC_NS  = 66.0,
    parameter real T_RRD_NS  = 15.0,
    parameter real T_WR_NS   = 15.0,
    parameter integer T_MRD_CK = 2,
    parameter real T_REF_NS  = 64000000.0,   // 64 ms for all 8192 rows
    parameter integer REF_ROWS = 8192,
    parameter integer REF_SLACK = 1,
    parameter real T_INIT_NS = 100000.0,
    parameter real T_CK_CL2_MIN_NS = 10.0,
    parameter real T_CK_CL3_MIN_NS = 7.5,
    parameter real T_AC_CL2_NS = 6.0,        // access time from CLK
    parameter real T_AC_CL3_NS = 5.4,
    parameter real T_OH_NS  = 3.0            // data-out hold time
) (
    input  wire        clk,
    input  wire        cke,
    input  wire        cs_n,
    input  wire        ras_n,
    input  wire        cas_n,
    input  wire        we_n,
    input  wire [1:0]  ba,
    input  wire [12:0] a,
    input  wire [1:0]  dqm,
    inout  wire [15:0] dq,
    output reg  [31:0] violations,
    output reg  [31:0] refreshes,
    output reg  [31:0] reads,
    output reg  [31:0] writes
);
    localparam EPS = 0.001;   // ns: edges of one clock are compared exactly up to rounding

    reg [15:0] mem [0:4*8192*512-1];      // contents start undefined (X), as after power-up

    // mode register
    reg        mode_valid;
    reg [2:0]  bl_code;
    reg        interleaved, single_write;
    integer    cl, bl;

    // per-bank state and the times of the commands that constrain the next ones
    reg        open_ [0:3];
    reg [12:0] row_  [0:3];
    real t_act [0:3], t_pre [0:3], t_wr_last [0:3];
    real t_act_any, t_ref, t_lmr, t_ref_base, now, t_prev, tck, t_start;
    integer lmr_edge, edge_n, init_refs, refs_at_base, i, b;
    reg started, ref_base_set, prev_v;

    // read pipeline: slot k holds what is driven in the cycle that starts at edge (edge_n + k)
    reg        rd_v   [0:15];
    reg [23:0] rd_a   [0:15];
    reg        rd_m   [0:15];  // DQM-disabled
    reg [15:0] dq_out;
    reg        dq_oe;
    assign dq = dq_oe ? dq_out : 16'bz;

    // write burst in progress
    integer    wr_left, wr_i;
    reg [1:0]  wr_bank;
    reg [8:0]  wr_col;

    task violation(input [8*48-1:0] what, input real need_ns, input real got_ns);
        begin
            violations = violations + 1;
            $display("sdram model: VIOLATION %0s at %0.1f ns: need %0.2f ns, got %0.2f ns",
                     what, $realtime, need_ns, got_ns);
        end
    endtask

    task check(input [8*48-1:0] what, input real since, input real need_ns);
        if (now - since + EPS < need_ns) violation(what, need_ns, now - since);
    endtask

    task state_error(input [8*48-1:0] what);
        begin
            violations = violations + 1;
            $display("sdram model: VIOLATION %0s at %0.1f ns (bank %0d)", what, $realtime, ba);
        end
    endtask

    // column of beat `k` of a burst starting at `col` (sequential or interleaved, wrapping in BL)
    function [8:0] beat_col(input [8:0] col, input integer k);
        reg [8:0] m;
        begin
            m = bl - 1;
            beat_col = interleaved ? ((col & ~m) | ((col ^ k) & m))
                                   : ((col & ~m) | ((col + k) & m));
        end
    endfunction

    initial begin
        violations = 0; refreshes = 0; reads = 0; writes = 0;
        mode_valid = 0; cl = 2; bl = 1; bl_code = 0; interleaved = 0; single_write = 0;
        for (i = 0; i < 4; i = i + 1) begin
            open_[i] = 0; t_act[i] = -1.0e12; t_pre[i] = -1.0e12; t_wr_last[i] = -1.0e12;
        end
        t_act_any = -1.0e12; t_ref = -1.0e12; t_lmr = -1.0e12; lmr_edge = -1000;
        edge_n = 0; init_refs = 0; started = 0; tck = 0.0; t_prev = 0.0;
        ref_base_set = 0; t_ref_base = 0.0; refs_at_base = 0; prev_v = 0;
        for (i = 0; i < 16; i = i + 1) begin rd_v[i] = 0; rd_m[i] = 0; end
        dq_out = 16'bx; dq_oe = 0; wr_left = 0;
    end

    // the data output of the slot that starts at this edge: the previous word holds until tOH,
    // then DQ is X (or released when this slot reads nothing) until the new word at tAC
    task drive_read_slot;
        reg [15:0] w;
        reg        v;
        begin
            v = rd_v[0] && !rd_m[0];
            w = v ? mem[rd_a[0]] : 16'bx;
            dq_out <= #(T_OH_NS) 16'bx;
            dq_oe  <= #(T_OH_NS) v;
            dq_out <= #((cl == 3) ? T_AC_CL3_NS : T_AC_CL2_NS) w;
            prev_v = v;
        end
    endtask

    always @(posedge clk) begin
        now = $realtime;
        if (!started) begin started = 1; t_start = now; end
        else tck = now - t_prev;
        t_prev = now;
        edge_n = edge_n + 1;

        // shift the read pipeline: slot 1 becomes the slot of the cycle after this edge
        for (i = 0; i < 15; i = i + 1) begin
            rd_v[i] = rd_v[i+1]; rd_a[i] = rd_a[i+1]; rd_m[i] = rd_m[i+1];
        end
        rd_v[15] = 0;

        // a write burst in progress takes its next beat from DQ
        if (wr_left > 0 && cke) begin
            if (!dqm[0]) mem[{wr_bank, row_[wr_bank], beat_col(wr_col, wr_i)}][7:0]  = dq[7:0];
            if (!dqm[1]) mem[{wr_bank, row_[wr_bank], beat_col(wr_col, wr_i)}][15:8] = dq[15:8];
            t_wr_last[wr_bank] = now;
            wr_i = wr_i + 1; wr_left = wr_left - 1;
        end

        if (cke && !cs_n && !(ras_n && cas_n && we_n)) begin
            if (now - t_start + EPS < T_INIT_NS) violation("tINIT (command during power-up)", T_INIT_NS, now - t_start);
            if (edge_n - lmr_edge < T_MRD_CK) violation("tMRD (LOAD MODE -> command)", T_MRD_CK * tck, (edge_n - lmr_edge) * tck);
            check("tRFC (AUTO REFRESH -> command)", t_ref, T_RFC_NS);
            case ({ras_n, cas_n, we_n})
                3'b011: activate;
                3'b101: read_write(0);
                3'b100: read_write(1);
                3'b110: begin wr_left = 0; for (i = 1; i < 16; i = i + 1) rd_v[i] = 0; end
                3'b010: precharge;
                3'b001: auto_refresh;
                3'b000: load_mode;
                default: ;
            endcase
        end
        // read DQM, latency 2: DQM at this edge disables the word valid two edges later (slot 1)
        if (dqm != 2'b00) rd_m[1] = 1;
        check_refresh_rate;
        drive_read_slot;
    end

    task activate;
        begin
            if (!mode_valid || init_refs < 2) state_error("ACTIVE before initialisation");
            if (open_[ba]) state_error("ACTIVE to an open bank");
            check("tRC (ACTIVE -> ACTIVE, same bank)", t_act[ba], T_RC_NS);
            check("tRP (PRECHARGE -> ACTIVE)", t_pre[ba], T_RP_NS);
            check("tRRD (ACTIVE -> ACTIVE, other bank)", t_act_any, T_RRD_NS);
            open_[ba] = 1; row_[ba] = a; t_act[ba] = now; t_act_any = now;
        end
    endtask

    task read_write(input is_write);
        integer k;
        begin
            if (!mode_valid) state_error("READ/WRITE with no valid mode");
            if (!open_[ba]) state_error("READ/WRITE to an idle bank");
            check("tRCD (ACTIVE -> READ/WRITE)", t_act[ba], T_RCD_NS);
            if (cl == 2 && tck + EPS < T_CK_CL2_MIN_NS) violation("CL2 at this clock (tCK(CL2))", T_CK_CL2_MIN_NS, tck);
            if (cl == 3 && tck + EPS < T_CK_CL3_MIN_NS) violation("CL3 at this clock (tCK(CL3))", T_CK_CL3_MIN_NS, tck);
            wr_left = 0;
            if (is_write) begin
                writes = writes + 1;
                for (k = 1; k < 16; k = k + 1) rd_v[k] = 0;   // a WRITE ends a read burst
                wr_bank = ba; wr_col = a[8:0]; wr_i = 0;
                wr_left = single_write ? 1 : bl;
                // the first beat is on DQ with the command (write latency 0)
                if (!dqm[0]) mem[{ba, row_[ba], a[8:0]}][7:0]  = dq[7:0];
                if (!dqm[1]) mem[{ba, row_[ba], a[8:0]}][15:8] = dq[15:8];
                t_wr_last[ba] = now; wr_i = 1; wr_left = wr_left - 1;
            end else begin
                reads = reads + 1;
                // word k is driven tAC after edge +CL-1+k (slot CL-1+k), valid at edge +CL+k
                for (k = cl - 1; k < 16; k = k + 1) rd_v[k] = 0;  // a READ ends the older burst
                for (k = 0; k < bl; k = k + 1) begin
                    rd_v[cl - 1 + k] = 1; rd_m[cl - 1 + k] = 0;
                    rd_a[cl - 1 + k] = {ba, row_[ba], beat_col(a[8:0], k)};
                end
            end
            if (a[10]) begin   // auto precharge: the bank closes after the burst (tRAS/tWR kept)
                open_[ba] = 0;
                t_pre[ba] = now + (is_write ? (bl - 1) * tck + T_WR_NS : bl * tck);
            end
        end
    endtask

    task precharge;
        begin
            for (b = 0; b < 4; b = b + 1) begin
                if ((a[10] || b == ba) && open_[b]) begin
                    check("tRAS (ACTIVE -> PRECHARGE)", t_act[b], T_RAS_NS);
                    if (now - t_act[b] > T_RAS_MAX_NS + EPS) violation("tRAS max (row open too long)", T_RAS_MAX_NS, now - t_act[b]);
                    check("tWR (write -> PRECHARGE)", t_wr_last[b], T_WR_NS);
                    open_[b] = 0; t_pre[b] = now;
                end
            end
        end
    endtask

    task auto_refresh;
        begin
            for (b = 0; b < 4; b = b + 1) begin
                if (open_[b]) state_error("AUTO REFRESH with a bank open");
                check("tRP (PRECHARGE -> AUTO REFRESH)", t_pre[b], T_RP_NS);
            end
            refreshes = refreshes + 1;
            init_refs = init_refs + 1;
            t_ref = now;
        end
    endtask

    task load_mode;
        begin
            for (b = 0; b < 4; b = b + 1) begin
                if (open_[b]) state_error("LOAD MODE with a bank open");
                check("tRP (PRECHARGE -> LOAD MODE)", t_pre[b], T_RP_NS);
            end
            lmr_edge = edge_n; t_lmr = now;
            bl_code = a[2:0]; interleaved = a[3]; single_write = a[9];
            cl = a[6:4];
            mode_valid = (a[8:7] == 2'b00) && (a[6:4] == 3'd2 || a[6:4] == 3'd3);
            if (a[8:7] == 2'b00 && a[2:0] > 3'd3) begin
                state_error("LOAD MODE: burst length not modelled");
                mode_valid = 0;
            end
            bl = 1 << a[1:0];
            if (mode_valid && init_refs >= 2 && !ref_base_set) begin
                ref_base_set = 1; t_ref_base = now; refs_at_base = refreshes;
            end
        end
    endtask

    // distributed refresh: refreshes since initialisation must keep up with one per tREF/rows
    task check_refresh_rate;
        real interval;
        integer owed, given;
        begin
            if (ref_base_set) begin
                interval = T_REF_NS / REF_ROWS;
                owed = $rtoi((now - t_ref_base) / interval);
                given = refreshes;
                given = given - refs_at_base;
                if (owed - given > REF_SLACK) begin
                    violation("tREF (refresh rate: 8192 per 64 ms)", interval, now - t_ref);
                    t_ref_base = now;          // report once per missed interval
                    refs_at_base = refreshes;
                end
            end
        end
    endtask
endmodule

`default_nettype wire
