"""Initial schema: photos, listings, model versions, predictions, corrections, Label Studio exports."""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    """One helper per table, in the order their foreign keys need."""
    _create_photos()
    _create_listings()
    _create_model_versions()
    _create_predictions()
    _create_corrections()
    _create_label_studio_exports()


def _create_photos() -> None:
    op.create_table(
        "photos",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("mime_type", sa.String(64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )


def _create_listings() -> None:
    op.create_table(
        "listings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("external_id", sa.String(255), nullable=True, unique=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("photo_sha256", sa.String(64), sa.ForeignKey("photos.sha256"), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_listings_photo_sha256", "listings", ["photo_sha256"])


def _create_model_versions() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("checkpoint_path", sa.Text(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("parent_id", sa.Integer(), sa.ForeignKey("model_versions.id"), nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
    )


def _create_predictions() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("listing_id", sa.Integer(), sa.ForeignKey("listings.id"), nullable=False),
        sa.Column("model_version_id", sa.Integer(), sa.ForeignKey("model_versions.id"), nullable=True),
        sa.Column("spans", sa.JSON(), nullable=False),
        sa.Column("attribute_scores", sa.JSON(), nullable=False),
        sa.Column("tau_r", sa.Float(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_predictions_listing_id", "predictions", ["listing_id"])
    op.create_index("ix_predictions_model_version_id", "predictions", ["model_version_id"])


def _create_corrections() -> None:
    op.create_table(
        "corrections",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("listing_id", sa.Integer(), sa.ForeignKey("listings.id"), nullable=False),
        sa.Column("prediction_id", sa.Integer(), sa.ForeignKey("predictions.id"), nullable=True),
        sa.Column("annotator", sa.String(255), nullable=False),
        sa.Column("spans", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("ls_annotation_id", sa.Integer(), nullable=True, unique=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exported", sa.Boolean(), nullable=False),
        sa.Column("exported_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('corrected', 'accepted', 'skipped')", name="ck_corrections_status"),
        sa.CheckConstraint("source IN ('app', 'label_studio')", name="ck_corrections_source"),
    )
    op.create_index("ix_corrections_listing_id", "corrections", ["listing_id"])
    op.create_index("ix_corrections_exported", "corrections", ["exported"])


def _create_label_studio_exports() -> None:
    op.create_table(
        "label_studio_exports",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("listing_id", sa.Integer(), sa.ForeignKey("listings.id"), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("exported_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("project_id", "listing_id"),
    )
    op.create_index("ix_label_studio_exports_listing_id", "label_studio_exports", ["listing_id"])


def downgrade() -> None:
    raise NotImplementedError(
        "Downgrading the first revision would delete every listing and correction; "
        "restore a backup copy of the database file instead."
    )
