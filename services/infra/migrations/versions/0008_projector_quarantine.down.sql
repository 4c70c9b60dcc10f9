DROP TABLE projector_quarantine;
