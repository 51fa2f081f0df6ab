"""NExtIMS: prediction of 70 eV electron-ionization mass spectra from molecular structure."""

from pathlib import Path

__version__ = "0.1.0"

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
