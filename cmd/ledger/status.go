package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"
)

// sealStatus is the answer of sys/seal-status (and of sys/unseal).
type sealStatus struct {
	Type         string `json:"type"`
	Initialized  bool   `json:"initialized"`
	Sealed       bool   `json:"sealed"`
	T            int    `json:"t"`
	N            int    `json:"n"`
	Progress     int    `json:"progress"`
	Nonce        string `json:"nonce"`
	Version      string `json:"version"`
	BuildDate    string `json:"build_date,omitempty"`
	Migration    bool   `json:"migration"`
	ClusterName  string `json:"cluster_name,omitempty"`
	ClusterID    string `json:"cluster_id,omitempty"`
	RecoverySeal bool   `json:"recovery_seal"`
	StorageType  string `json:"storage_type,omitempty"`
	// RecoveryEscrow is Ledger's: with an auto-seal, whether the recovery keys can open the
	// root key when the seal's key is lost.
	RecoveryEscrow *bool `json:"recovery_escrow,omitempty"`
}

// leaderStatus is the answer of sys/leader.
type leaderStatus struct {
	HAEnabled            bool   `json:"ha_enabled"`
	IsSelf               bool   `json:"is_self"`
	ActiveTime           string `json:"active_time"`
	LeaderAddress        string `json:"leader_address"`
	LeaderClusterAddress string `json:"leader_cluster_address"`
}

// statusOutput is what `status -format=json` prints: the seal status plus
// HA information, as Vault's CLI does.
type statusOutput struct {
	sealStatus
	HAEnabled            bool   `json:"ha_enabled"`
	IsSelf               bool   `json:"is_self,omitempty"`
	ActiveTime           string `json:"active_time,omitempty"`
	LeaderAddress        string `json:"leader_address,omitempty"`
	LeaderClusterAddress string `json:"leader_cluster_address,omitempty"`
}

func (a *app) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Print the seal and HA status of the server",
		Long: `Print the seal and HA status of the server.

Exit code: 0 unsealed, 2 sealed, 1 error (for example, no server).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			var st sealStatus
			if err := c.Call(cmd.Context(), http.MethodGet, "sys/seal-status", nil, &st); err != nil {
				return &cliError{op: "checking seal status", err: err, code: 1}
			}
			if err := printSealStatus(cmd.Context(), c, p, st); err != nil {
				return &cliError{op: "printing seal status", err: err, code: 1}
			}
			if st.Sealed {
				return exitStatus(2)
			}
			return nil
		},
	}
}

// printSealStatus prints the seal status and, on an unsealed server, its
// HA status. sys/leader is optional in the API: without it HA is reported
// as disabled.
func printSealStatus(ctx context.Context, c *Client, p *printer, st sealStatus) error {
	out := statusOutput{sealStatus: st}
	if !st.Sealed {
		var leader leaderStatus
		if err := c.Call(ctx, http.MethodGet, "sys/leader", nil, &leader); err == nil {
			out.HAEnabled = leader.HAEnabled
			out.IsSelf = leader.IsSelf
			out.ActiveTime = leader.ActiveTime
			out.LeaderAddress = leader.LeaderAddress
			out.LeaderClusterAddress = leader.LeaderClusterAddress
		}
	}
	if p.format != formatTable {
		return p.Structured(out)
	}
	return p.KeyValue(sealStatusRows(out))
}

func sealStatusRows(s statusOutput) [][2]string {
	rows := [][2]string{{"Seal Type", s.Type}}
	if s.RecoverySeal {
		rows = append(rows, [2]string{"Recovery Seal Type", "shamir"})
	}
	rows = append(rows,
		[2]string{"Initialized", fmt.Sprint(s.Initialized)},
		[2]string{"Sealed", fmt.Sprint(s.Sealed)},
		[2]string{"Total Recovery Shares", fmt.Sprint(s.N)},
		[2]string{"Threshold", fmt.Sprint(s.T)})
	if !s.RecoverySeal {
		rows[len(rows)-2][0] = "Total Shares"
	}
	if s.RecoveryEscrow != nil {
		rows = append(rows, [2]string{"Recovery Escrow", fmt.Sprint(*s.RecoveryEscrow)})
	}
	if s.Migration {
		rows = append(rows, [2]string{"Seal Migration in Progress", "true"})
	}
	if s.Sealed && !(s.RecoverySeal && !s.Migration) {
		rows = append(rows,
			[2]string{"Unseal Progress", fmt.Sprintf("%d/%d", s.Progress, s.T)},
			[2]string{"Unseal Nonce", s.Nonce})
	}
	rows = append(rows, [2]string{"Version", s.Version})
	if s.BuildDate != "" {
		rows = append(rows, [2]string{"Build Date", s.BuildDate})
	}
	rows = append(rows, [2]string{"Storage Type", s.StorageType})
	if s.ClusterName != "" {
		rows = append(rows, [2]string{"Cluster Name", s.ClusterName})
	}
	if s.ClusterID != "" {
		rows = append(rows, [2]string{"Cluster ID", s.ClusterID})
	}
	rows = append(rows, [2]string{"HA Enabled", fmt.Sprint(s.HAEnabled)})
	if s.HAEnabled {
		mode := "standby"
		if s.IsSelf {
			mode = "active"
		}
		rows = append(rows,
			[2]string{"HA Cluster", s.LeaderClusterAddress},
			[2]string{"HA Mode", mode})
		if s.IsSelf && s.ActiveTime != "" {
			rows = append(rows, [2]string{"Active Since", s.ActiveTime})
		}
		if !s.IsSelf {
			rows = append(rows, [2]string{"Active Node Address", s.LeaderAddress})
		}
	}
	return rows
}
