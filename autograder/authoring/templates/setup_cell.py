# Set-up. On Google Colab this installs the course library (student_src) and the packages
# Colab lacks, WITHOUT reinstalling Colab's torch, then downloads the model and the data.
# In a local Jupyter it changes nothing: the library is already installed there. Offline, start
# Jupyter with XAI_KIT_STANDIN=1: the notebook then runs on an untrained stand-in (no download).
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile

KIT_SOURCE = os.environ.get("XAI_KIT_PIP_SOURCE", "{pip_source}")
if "google.colab" in sys.modules:
    keep = [f"{name}=={importlib.metadata.version(name)}" for name in ("torch", "torchvision")
            if importlib.util.find_spec(name) is not None]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as pins:
        pins.write("\n".join(keep) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", KIT_SOURCE, "-c", pins.name], check=True)
    fetch_args = os.environ.get("XAI_KIT_FETCH_ARGS", "").split()
    subprocess.run([sys.executable, "-m", "student_src.fetch", *fetch_args], check=True)
    print("Colab set-up done: student_src installed, model and data fetched.")
else:
    print("Local Jupyter: nothing to install. Run `python -m student_src.fetch` once for the model and data, "
          "or start Jupyter with XAI_KIT_STANDIN=1 to run offline on the untrained stand-in.")
