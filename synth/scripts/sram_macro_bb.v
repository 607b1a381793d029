// Black-box declaration of the generic SRAM macro cell made by sram_macro_map.v; read with
// `read_verilog -lib` so that Yosys knows the pin directions and `hierarchy -check` accepts it.
// Port widths follow the parameters; Yosys does not derive black boxes per parameter set, so
// every macro stays one SPATTEN_SRAM cell (flow.py reads DEPTH/WIDTH/BWE from the instances).
(* blackbox *)
module SPATTEN_SRAM (CLK, RE, RADDR, RDATA, WE, WADDR, WDATA);
	parameter DEPTH = 2;           // words
	parameter WIDTH = 1;           // bits per word
	parameter ABITS = 1;           // address bits
	parameter BWE = 0;             // 1: WE has one bit per data bit; 0: one WE bit
	input CLK;
	input RE;
	input [ABITS-1:0] RADDR;
	output [WIDTH-1:0] RDATA;
	input [(BWE ? WIDTH : 1)-1:0] WE;
	input [ABITS-1:0] WADDR;
	input [WIDTH-1:0] WDATA;
endmodule
