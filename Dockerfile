FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.lock pyproject.toml README.md ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY core ./core
COPY adapters ./adapters
COPY bots ./bots
COPY observability ./observability
COPY tenants ./tenants
COPY docs ./docs
RUN pip install --no-cache-dir --no-deps . && useradd --create-home switchboard \
    && mkdir -p /app/var && chown switchboard /app/var
USER switchboard
EXPOSE 8000
CMD ["switchboard", "serve", "--host", "0.0.0.0", "--port", "8000"]
