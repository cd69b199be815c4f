# attnviz, CPU image. Builds its environment from requirements.txt exactly as .ci/run and the README do.
# CUDA variant: see docs/deploy.md (same file, a CUDA base image and a CUDA torch wheel).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false STREAMLIT_SERVER_HEADLESS=true

WORKDIR /app
# torch==2.13.0 comes from the CPU index here so the image does not pull a multi-GB CUDA build
COPY requirements.txt pyproject.toml README.md ./
COPY attnviz ./attnviz
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt

COPY . .
RUN useradd --create-home attnviz && chown -R attnviz /app
USER attnviz

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health')"
CMD ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501"]
