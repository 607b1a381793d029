"""cocotb-side helpers (imported only inside a simulator process)."""
