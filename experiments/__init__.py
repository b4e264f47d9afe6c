"""Orchestration and the `tradingbot` command line."""
