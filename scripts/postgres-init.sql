-- Run once by the postgres container of docker-compose.yaml on its first start: nr4dl's own database
-- (crawl catalog, failed-file list) beside Airflow's, on the same server.
CREATE DATABASE nr4dl OWNER airflow;
