"""Listings get a content key (text up to case and spacing, plus the photo's hash), so a listing tried
in the Extract tab is recognised when the same listing is already in the store under another id.
Existing rows are keyed here."""
import sqlalchemy as sa
from alembic import op

from store.keys import content_key

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("listings", sa.Column("content_key", sa.String(64), nullable=True))
    op.create_index("ix_listings_content_key", "listings", ["content_key"])
    connection = op.get_bind()
    listings = sa.table("listings", sa.column("id", sa.Integer), sa.column("text", sa.Text),
                        sa.column("photo_sha256", sa.String), sa.column("content_key", sa.String))
    for row in connection.execute(sa.select(listings.c.id, listings.c.text, listings.c.photo_sha256)).all():
        connection.execute(listings.update().where(listings.c.id == row.id)
                           .values(content_key=content_key(row.text, row.photo_sha256)))


def downgrade() -> None:
    op.drop_index("ix_listings_content_key", "listings")
    with op.batch_alter_table("listings") as batch:
        batch.drop_column("content_key")
