"""Evaluation: the starting-transform protocol, SRE, the compare runner, statistics, tables and plots."""
