"""edgekit's zoo of deployment-friendly hybrid conv-attention models (see docs/models.md)."""
from edgekit.models._registry import ModelCfg, create_model, get_cfg, is_model, list_models, register_model
from edgekit.models._reparam import reparameterize_model

__all__ = ["ModelCfg", "create_model", "get_cfg", "is_model", "list_models", "register_model", "reparameterize_model"]
