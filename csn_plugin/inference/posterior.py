"""From network outputs to posteriors: temperature, the user's domain prior and the optional
re-scoring of each group by the agreement of its symmetry rules with the rule head."""


def posteriors(logits, rule_logits, temperature, log_prior, rules, rule_rescoring=0.0):
    """``(probabilities (B, 230), rule presences (B, 46) or None)`` as torch tensors.

    ``logits``: the network's (B, 230) uniform-prior logits; ``rule_logits``: (B, 46, 2) or None;
    ``temperature``: the model's calibration T; ``log_prior``: (230,) log prior of the user's domain;
    ``rules``: the (230, 46) rule matrix (``symmetry.rule_matrix``; non-zero = the rule is present);
    ``rule_rescoring``: weight of the rules' mean log-likelihood added to the logits (0: off).
    """
    import torch

    logits = logits.float() / temperature + log_prior
    presence = None
    if rule_logits is not None:
        presence = torch.sigmoid(rule_logits[..., 0].float())
        if rule_rescoring:
            # log-likelihood of each group's rule pattern under the predicted presences
            present = (rules != 0).float()
            agreement = torch.log(presence.clamp(1e-6, 1 - 1e-6)) @ present.T + torch.log((1 - presence).clamp(1e-6, 1 - 1e-6)) @ (1 - present).T
            logits = logits + rule_rescoring * agreement / present.shape[1]
    return torch.softmax(logits, dim=1), presence
