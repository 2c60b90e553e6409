# Reverse Diffusion Lab as a Hugging Face Docker Space (README front matter: sdk: docker, app_port: 8501).
# Build and run locally:  docker build -t reverse-diffusion-lab . && docker run --rm -p 8501:8501 reverse-diffusion-lab
# With an NVIDIA GPU (README, "Deployment"; needs the NVIDIA Container Toolkit on the host):
#   docker build --build-arg TORCH_INDEX_URL=https://pypi.org/simple -t reverse-diffusion-lab:gpu .
#   docker run --rm --gpus all -p 8501:8501 reverse-diffusion-lab:gpu
#   docker run --rm --gpus all reverse-diffusion-lab:gpu python bench/gpu_check.py --device cuda
FROM python:3.11-slim

# Spaces run the container as uid 1000; giving that user a home keeps caches writable.
RUN useradd --create-home --uid 1000 user
USER user
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /home/user/app

# Spaces' free hardware has no GPU: install requirements.txt's exact torch pin from the CPU wheel index
# first (a few hundred MB instead of several GB of CUDA libraries). A pin like torch==X is satisfied by
# the X+cpu wheel, so the second install keeps it. For CUDA: --build-arg TORCH_INDEX_URL=https://pypi.org/simple
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY --chown=user requirements.txt .
RUN pip install --no-cache-dir --user --index-url "$TORCH_INDEX_URL" "$(grep -E '^torch==' requirements.txt)" \
 && pip install --no-cache-dir --user -r requirements.txt

COPY --chown=user . .
# The project itself (core, ui and bench as packages), so that `python bench/gpu_check.py` finds `bench` and `core`
# as the scripts import them; --no-deps: the requirements are installed above.
RUN pip install --no-cache-dir --user --no-deps -e .

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"
# enableXsrfProtection false: Spaces embed the app in a cross-site iframe where browsers drop Streamlit's
# XSRF cookie, which breaks st.file_uploader (https://huggingface.co/docs/hub/spaces-cookie-limitations).
# fileWatcherType none: the deployed code never changes, so nothing needs watching.
CMD ["streamlit", "run", "app.py", "--server.address", "0.0.0.0", "--server.port", "8501", \
     "--server.enableXsrfProtection", "false", "--server.fileWatcherType", "none"]
