# attnviz, CPU image by default. Builds its environment from requirements.txt exactly as .ci/run and the
# README do: `python3 -m venv <venv> && <venv>/bin/pip install -r requirements.txt` (tests/test_packaging.py).
#
#   docker build -t attnviz .                                   # CPU
#   docker build -t attnviz:cuda \                              # CUDA variant (docs/deploy.md)
#       --build-arg BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 \
#       --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
#   docker run -p 8501:8501 attnviz                             # add --gpus all for the CUDA image
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
# where pip finds torch==2.13.0: the CPU build by default, so the image does not pull a multi-GB CUDA build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false STREAMLIT_SERVER_HEADLESS=true \
    PATH=/opt/venv/bin:$PATH
# glibc keeps a thread's freed memory in that thread's malloc arena (8 per core by default; every Streamlit
# session runs in a thread of its own): 2 arenas bring RSS back near idle after a class leaves (docs/limits.md,
# "Classroom burst"). Must be set before the process starts: app.py cannot set it.
ENV MALLOC_ARENA_MAX=2

# the CUDA base images carry no Python: install it there (the python image already has it)
RUN if ! command -v python3 >/dev/null 2>&1; then \
        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi

WORKDIR /app
# requirements.txt ends with `-e .`: the package itself must be here before the install
COPY requirements.txt pyproject.toml README.md ./
COPY attnviz ./attnviz
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --extra-index-url ${TORCH_INDEX} -r requirements.txt

COPY . .
RUN useradd --create-home attnviz && chown -R attnviz /app
USER attnviz

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health')"
CMD ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501"]
