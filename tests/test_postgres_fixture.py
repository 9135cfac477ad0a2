"""The PostgreSQL fixture starts a real server that takes connections and writes."""

import sqlalchemy


def test_postgres_server_takes_writes(postgres_url):
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text("CREATE TABLE probe (value integer)"))
        connection.execute(sqlalchemy.text("INSERT INTO probe VALUES (41), (1)"))
        total = connection.execute(sqlalchemy.text("SELECT sum(value) FROM probe")).scalar()
    engine.dispose()
    assert total == 42
