# ticketflow: one image, three services (the command picks which).
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY shared ./shared
COPY services ./services
COPY migrations ./migrations
RUN pip install . && useradd --system --uid 10001 ticketflow
USER ticketflow
EXPOSE 8001 8002 8003
CMD ["ticketflow", "--help"]
