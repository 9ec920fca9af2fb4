// The pod sandbox ("pause") program of the single-node cluster: no dependencies.
module videoresizer.invalid/e2e/cluster/pause

go 1.24.0
