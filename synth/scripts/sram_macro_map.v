// Memory -> black-box SRAM macro, for the `memory="macro"` mode of the cmos and asic targets.
// synth/flow.py runs `techmap -map <target>_sram_map.v t:$mem_v2` between
// `synth -run begin:fine` (which ends with `memory -nomap`) and `synth -run fine:` (whose
// `memory_map` turns every memory left over into flip-flops).
//
// A memory becomes one SPATTEN_SRAM cell (declared in sram_macro_bb.v) when it has exactly one
// synchronous write port and one synchronous read port, both on the rising edge of the same
// clock, and the read port has no reset and is not transparent (a read of the word being
// written returns the old word), and it has at least SPATTEN_MIN_MACRO_DEPTH words (defined by
// flow.py from synth.macro.MIN_MACRO_DEPTH: fewer, a FIFO's handful of entries, is a register
// file, smaller than any SRAM macro).
// Anything else sets _TECHMAP_FAIL_ and is left to memory_map.
// The read data register (merged into the read port by memory_dff) is inside the macro.
// Initial contents (INIT, RD_INIT_VALUE) are dropped, as every init value is in the ASIC
// netlist (toolchain.md P10).
//
// Macro pins: CLK; read: RE (read enable), RADDR[ABITS], RDATA[WIDTH] (registered);
// write: WE, WADDR[ABITS], WDATA[WIDTH]. WE is one bit when every bit of the memory's write
// enable is the same net (BWE=0), else one bit per data bit (BWE=1, bit-write enable).
// flow.py renames the cells to SRAM_<DEPTH>x<WIDTH>_1R1W[_BWE] in the netlist.

(* techmap_celltype = "$mem_v2" *)
module _spatten_sram_map (RD_CLK, RD_EN, RD_ARST, RD_SRST, RD_ADDR, RD_DATA,
                          WR_CLK, WR_EN, WR_ADDR, WR_DATA);
	parameter MEMID = "";
	parameter signed SIZE = 4;
	parameter signed OFFSET = 0;
	parameter signed ABITS = 2;
	parameter signed WIDTH = 8;
	parameter signed INIT = 1'bx;

	parameter signed RD_PORTS = 1;
	parameter RD_CLK_ENABLE = 1'b1;
	parameter RD_CLK_POLARITY = 1'b1;
	parameter RD_TRANSPARENCY_MASK = 1'b0;
	parameter RD_COLLISION_X_MASK = 1'b0;
	parameter RD_WIDE_CONTINUATION = 1'b0;
	parameter RD_CE_OVER_SRST = 1'b0;
	parameter RD_ARST_VALUE = 1'b0;
	parameter RD_SRST_VALUE = 1'b0;
	parameter RD_INIT_VALUE = 1'b0;

	parameter signed WR_PORTS = 1;
	parameter WR_CLK_ENABLE = 1'b1;
	parameter WR_CLK_POLARITY = 1'b1;
	parameter WR_PRIORITY_MASK = 1'b0;
	parameter WR_WIDE_CONTINUATION = 1'b0;

	input [RD_PORTS-1:0] RD_CLK;
	input [RD_PORTS-1:0] RD_EN;
	input [RD_PORTS-1:0] RD_ARST;
	input [RD_PORTS-1:0] RD_SRST;
	input [RD_PORTS*ABITS-1:0] RD_ADDR;
	output [RD_PORTS*WIDTH-1:0] RD_DATA;

	input [WR_PORTS-1:0] WR_CLK;
	input [WR_PORTS*WIDTH-1:0] WR_EN;
	input [WR_PORTS*ABITS-1:0] WR_ADDR;
	input [WR_PORTS*WIDTH-1:0] WR_DATA;

	parameter _TECHMAP_CONSTMSK_RD_ARST_ = 0;
	parameter _TECHMAP_CONSTVAL_RD_ARST_ = 0;
	parameter _TECHMAP_CONSTMSK_RD_SRST_ = 0;
	parameter _TECHMAP_CONSTVAL_RD_SRST_ = 0;
	parameter _TECHMAP_CONNMAP_RD_CLK_ = 0;
	parameter _TECHMAP_CONNMAP_WR_CLK_ = 0;
	parameter _TECHMAP_BITS_CONNMAP_ = 0;
	parameter _TECHMAP_CONNMAP_WR_EN_ = 0;

	// One write enable for the whole word when all WR_EN bits are driven by one net.
	localparam BWE = _TECHMAP_CONNMAP_WR_EN_ !=
		{WIDTH{_TECHMAP_CONNMAP_WR_EN_[_TECHMAP_BITS_CONNMAP_-1:0]}};

	wire _TECHMAP_FAIL_ =
		RD_PORTS != 1 || WR_PORTS != 1 || OFFSET != 0 || SIZE < `SPATTEN_MIN_MACRO_DEPTH ||
		RD_CLK_ENABLE !== 1'b1 || RD_CLK_POLARITY !== 1'b1 ||
		WR_CLK_ENABLE !== 1'b1 || WR_CLK_POLARITY !== 1'b1 ||
		_TECHMAP_CONNMAP_RD_CLK_ != _TECHMAP_CONNMAP_WR_CLK_ ||
		RD_TRANSPARENCY_MASK !== 1'b0 || RD_COLLISION_X_MASK !== 1'b0 ||
		RD_WIDE_CONTINUATION !== 1'b0 || WR_WIDE_CONTINUATION !== 1'b0 ||
		_TECHMAP_CONSTMSK_RD_ARST_ !== 1'b1 || _TECHMAP_CONSTVAL_RD_ARST_ !== 1'b0 ||
		_TECHMAP_CONSTMSK_RD_SRST_ !== 1'b1 || _TECHMAP_CONSTVAL_RD_SRST_ !== 1'b0;

	wire [(BWE ? WIDTH : 1)-1:0] we = WR_EN;   // all bits, or bit 0 of one shared net

	SPATTEN_SRAM #(
		.DEPTH(SIZE),
		.WIDTH(WIDTH),
		.ABITS(ABITS),
		.BWE(BWE)
	) _TECHMAP_REPLACE_ (
		.CLK(WR_CLK),
		.RE(RD_EN),
		.RADDR(RD_ADDR),
		.RDATA(RD_DATA),
		.WE(we),
		.WADDR(WR_ADDR),
		.WDATA(WR_DATA)
	);
endmodule
