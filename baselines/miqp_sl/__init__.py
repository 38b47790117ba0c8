"""MIQP baseline ``sl`` (Le, Xie and Mangharam, L4DC 2026): supervised: integers fitted to the certified labels."""
