FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN DATABASE_URL=sqlite:////tmp/build.sqlite3 python manage.py collectstatic --no-input -v0
EXPOSE 8000
CMD ["gunicorn", "deploy_portal.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
