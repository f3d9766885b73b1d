"""The compute market off chain: deployment files, the tenant's tools and (to come) the provider daemon."""
