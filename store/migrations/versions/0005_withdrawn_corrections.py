"""A correction may be 'withdrawn': its annotation was deleted in Label Studio, so the store keeps a
new version that says so (the old one stays) and the listing goes back to the review queue."""
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("corrections") as batch:
        batch.drop_constraint("ck_corrections_status", type_="check")
        batch.create_check_constraint("ck_corrections_status",
                                      "status IN ('corrected', 'accepted', 'skipped', 'withdrawn')")


def downgrade() -> None:
    op.execute("DELETE FROM corrections WHERE status = 'withdrawn'")
    with op.batch_alter_table("corrections") as batch:
        batch.drop_constraint("ck_corrections_status", type_="check")
        batch.create_check_constraint("ck_corrections_status", "status IN ('corrected', 'accepted', 'skipped')")
