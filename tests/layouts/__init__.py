"""Fixture generators that write small data sets in the published layouts (µ-RegPro, DeepReg, ...), built from
regkit's own phantom with known rigid offsets between the MR and TRUS physical spaces."""
