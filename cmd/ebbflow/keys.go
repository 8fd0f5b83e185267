package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ebbflow/ebbflow/internal/decisionsig"
)

func init() { subcommands = append(subcommands, newKeysCmd) }

func newKeysCmd(*globals) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Manage the key pairs deciders sign decisions with"}
	var dir, name string
	var force bool
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Write a new ed25519 key pair: <name>.key (deciders: signing.private_key_file) and <name>.pub (actuators: signing.public_keys)",
		Long: `Write a new ed25519 key pair for signed decisions (docs/actuators.md, "Signed decisions"):
<dir>/<name>.key, a PEM PKCS #8 private key (mode 0600) for the deciders'
signing.private_key_file, and <dir>/<name>.pub, a PEM public key for the
actuators' signing.public_keys. In Kubernetes, store each in a Secret, e.g.
  kubectl -n ebbflow create secret generic ebbflow-decision-key --from-file=decision.key=<dir>/<name>.key
  kubectl -n ebbflow create secret generic ebbflow-decision-pub --from-file=decision.pub=<dir>/<name>.pub
The key id printed is what records carry in their ebbflow_sig_key header.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pub, priv, err := decisionsig.GenerateKey()
			if err != nil {
				return err
			}
			kb, err := decisionsig.MarshalPrivateKey(priv)
			if err != nil {
				return err
			}
			pb, err := decisionsig.MarshalPublicKey(pub)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("keys: %w", err)
			}
			keyFile, pubFile := filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
			flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			if !force {
				flags |= os.O_EXCL
			}
			for _, f := range []struct {
				path string
				b    []byte
				mode os.FileMode
			}{{keyFile, kb, 0o600}, {pubFile, pb, 0o644}} {
				w, err := os.OpenFile(f.path, flags, f.mode)
				if err != nil {
					return fmt.Errorf("keys: %w (pass --force to replace it)", err)
				}
				if _, err := w.Write(f.b); err != nil {
					w.Close()
					return fmt.Errorf("keys: write %s: %w", f.path, err)
				}
				if err := w.Close(); err != nil {
					return fmt.Errorf("keys: write %s: %w", f.path, err)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "key id %s\nprivate key %s (signing.private_key_file)\npublic key  %s (signing.public_keys)\n",
				decisionsig.KeyID(pub), keyFile, pubFile)
			return nil
		},
	}
	gen.Flags().StringVar(&dir, "dir", ".", "directory to write the two files to")
	gen.Flags().StringVar(&name, "name", "decision", "file name stem: <name>.key and <name>.pub")
	gen.Flags().BoolVar(&force, "force", false, "replace existing files")
	cmd.AddCommand(gen)
	return cmd
}
