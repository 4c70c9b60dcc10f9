DROP TABLE organization_versions;
