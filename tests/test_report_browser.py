"""The HTML report rendered by a real browser: headless Chromium (Debian package `chromium`).

Chromium is installed with `apt-get install -y chromium` when absent and possible (root, apt
present); otherwise the test is skipped with the reason. The first run may take minutes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from csdi.reports import PHYSIONET_REFERENCES, build_report

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip


def chromium() -> str:
    """Path of the chromium binary, installing the Debian package if needed; else skip."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("chromium absent and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            tail = " ".join(done.stderr.split()[-30:])
            pytest.skip(f"chromium could not be installed ({' '.join(cmd)}: {tail})")
    found = shutil.which("chromium")
    if not found:
        pytest.skip("apt-get reported success but no chromium binary is on PATH")
    return found


def png_pixels(path: Path) -> np.ndarray:
    """RGB pixels (H, W, 3) of a PNG (Pillow comes with matplotlib)."""
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    recs = [
        {"dataset": "physionet", "units": "normalised", "method": m, "seed": 0,
         "protocol": {"missing_ratio": r, "fold": 0}, "n_samples": 10, "sampler": None,
         "steps": None, "impute_seconds": 1.0, "command": "csdi baselines",
         "metrics": {"crps": c + r, "crps_exact": c, "mae": c, "rmse": c, "coverage_50": 0.3,
                     "coverage_90": 0.7}}
        for m, c in (("linear", 0.5), ("iterative", 0.4)) for r in (0.1, 0.5, 0.9)
    ]  # fmt: skip
    return build_report(
        recs, output_dir=out, title="Browser check", references=PHYSIONET_REFERENCES
    )["html"]


def run_chromium(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [binary, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def test_tables_and_images_are_in_the_rendered_dom(report: Path, tmp_path: Path) -> None:
    done = run_chromium(chromium(), tmp_path, "--dump-dom", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert dom.count("<table") == 3 and dom.count('class="reference"') == 3
    assert "CSDI (published)" in dom
    imgs = re.findall(r"<img [^>]*>", dom)
    assert len(imgs) == 2  # CRPS against missing ratio, calibration
    assert all("data:image/png;base64," in tag for tag in imgs)


def test_screenshot_shows_a_rendered_page(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "page.png"
    done = run_chromium(
        chromium(), tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri()
    )
    assert shot.is_file(), done.stderr[-2000:]
    pixels = png_pixels(shot)
    assert pixels.shape[:2] == (1600, 1200)
    # A blank page is one colour; tables, text and plots put a real share of pixels off white.
    off_white = (pixels < 230).any(axis=-1).mean()
    assert 0.02 < off_white < 0.9, off_white
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # anti-aliased text and plots
