"""An attribute set annotators can extend, and when each correction was made by its own side's clock.

`attributes` holds attributes added beyond a model's own (the model's come from its checkpoint).
`corrections.changed` is when the verdict was made: the app's save time for the app's corrections,
Label Studio's `updated_at` for imported ones; the newest by it is a listing's current correction,
so an edit imported late does not override a later one made in the app. Existing rows get their
`created` time, which is what decided before.
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "attributes",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("added_by", sa.String(255), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.add_column("corrections", sa.Column("changed", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE corrections SET changed = created")
    op.create_index("ix_corrections_listing_changed", "corrections", ["listing_id", "changed"])


def downgrade() -> None:
    op.drop_index("ix_corrections_listing_changed", "corrections")
    with op.batch_alter_table("corrections") as batch:
        batch.drop_column("changed")
    op.drop_table("attributes")
