"""Spectrum and BDE models."""
