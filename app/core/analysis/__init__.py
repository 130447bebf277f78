"""Checks of what an autoencoder promises, with numbers (no Qt; numpy in, numpy/dicts out).

    pca_baseline     PCA with k = latent size on the same training split: held-out error, the error
                     curve for every k, PCA reconstructions for a side-by-side view
    probes           linear-probe and k-NN accuracy of codes vs PCA components
    anomaly          per-sample scores, thresholds, top-k gallery, ROC AUC / AP vs PCA
    disentanglement  MIG, DCI, SAP, per-factor table, the factor each dimension explains
    restoration      corrupt (noise, mask, block), restore with the model, PSNR
    compare_runs     a table of several runs (the beta trade-off)
    report           extend_report: the fields `evaluate --json` adds

Submodules import scikit-learn lazily inside their functions, so importing them is cheap.
"""
