# OpenSTA reg->reg timing of the asic netlist; rendered by synth/flow.py (string.Template).
# Placeholders: liberty read_macros netlist top clock period_ns. OpenSTA 2.0.17 keeps going
# after an error and exits 0, so flow.py treats any "Error" line as a failure.
# SRAM macros (memory="macro") come with their own liberty (synth/macro.py); they count among
# all_registers, with setup/hold checks on their inputs and clock-to-q arcs on RDATA.
read_liberty ${liberty}
${read_macros}
read_verilog ${netlist}
link_design ${top}
set_cmd_units -time ns
create_clock -name ${clock} -period ${period_ns} [get_ports ${clock}]
set_input_delay 0 -clock ${clock} [delete_from_list [all_inputs] [get_ports ${clock}]]
set_output_delay 0 -clock ${clock} [all_outputs]
report_checks -path_delay max -from [all_registers -clock_pins] -to [all_registers -data_pins] -digits 3
report_wns
