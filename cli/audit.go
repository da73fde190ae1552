package cli

import (
	"bufio"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/customernode/gatekeeper/audit"
	"github.com/spf13/cobra"
)

func auditCommand(cmd *cobra.Command) {
	adminFlags(cmd)
	cmd.Example = "  $ gatekeeper audit verify\n  $ gatekeeper audit export --approval \"$id\""
	verify := &cobra.Command{Use: "verify", Example: `  $ gatekeeper audit verify
  $ gatekeeper audit verify --file ./data/audit.jsonl
  $ gatekeeper audit verify --file evidence.json --key platform.pub.pem`, Short: "Checks the audit trail's hash chains", Args: cobra.NoArgs}
	verify.Flags().String("file", "", "Verify this audit log or evidence export instead of asking the admin API")
	verify.Flags().String("key", "", "With --file or --against: the public key (PEM) an evidence export must be signed with")
	verify.Flags().String("against", "", "Also hold the store's trail to this evidence export's chain head (it must verify first)")
	verify.RunE = run(func(cmd *cobra.Command, _ []string) error {
		var reports []audit.ChainReport
		var anchor string // what is wrong with the instance's known heads
		j, _ := cmd.Flags().GetBool("json")
		if file, _ := cmd.Flags().GetString("file"); file != "" {
			keyFile, _ := cmd.Flags().GetString("key")
			var export *audit.EvidenceReport
			var err error
			if reports, export, err = verifyFile(file, keyFile); err != nil {
				return err
			}
			if export != nil {
				return printEvidence(cmd.OutOrStdout(), *export, j)
			}
			if j {
				b, _ := json.MarshalIndent(reports, "", "  ")
				fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
			}
		} else {
			var body any
			if against, _ := cmd.Flags().GetString("against"); against != "" {
				keyFile, _ := cmd.Flags().GetString("key")
				known, err := exportHead(against, keyFile)
				if err != nil {
					return err
				}
				body = map[string]any{"known": []audit.KnownHead{known}}
			}
			c := newClient(cmd)
			c.json = false // read the answer for the exit status; printed below
			b, err := c.call("POST", "/gatekeeper/audit/verify", body)
			if err != nil {
				return err
			}
			if j {
				cmd.OutOrStdout().Write(b)
			}
			var v audit.Verification
			if err := json.Unmarshal(b, &v); err != nil {
				return fmt.Errorf("reading the admin API's answer: %w", err)
			}
			reports, anchor = v.Chains, v.Anchor
			if v.Error != "" {
				return fmt.Errorf("the audit trail could not be read: %s", v.Error)
			}
		}
		if !j {
			if err := printChains(cmd.OutOrStdout(), reports); err != nil {
				return err
			}
		}
		for _, r := range reports {
			if !r.OK {
				return fmt.Errorf("the %s chain is broken at seq %d: %s", r.Kind, r.BrokenAt, r.Problem)
			}
		}
		if anchor != "" {
			return fmt.Errorf("the audit trail cannot be held to what this instance saw before: %s", anchor)
		}
		return nil
	})
	export := &cobra.Command{Use: "export", Example: `  $ gatekeeper audit export --approval "$id" > "$id-evidence.json"
  $ gatekeeper audit export --approval "$id" --output evidence.json`, Short: "Prints one approval's evidence for an auditor", Args: cobra.NoArgs}
	export.Flags().String("approval", "", "The approval's id (required)")
	export.Flags().String("output", "", "Write the evidence to this file (mode 0600) instead of standard output")
	export.Flags().Bool("force", false, "With --output: overwrite the file if it exists")
	export.RunE = run(func(cmd *cobra.Command, _ []string) error {
		id, _ := cmd.Flags().GetString("approval")
		if id == "" {
			return errors.New("--approval: give the id of the approval whose evidence to export")
		}
		out, _ := cmd.Flags().GetString("output")
		force, _ := cmd.Flags().GetBool("force")
		if force && out == "" {
			return errors.New("--force: it only lets --output overwrite a file; without --output the evidence goes to standard output")
		}
		c := newClient(cmd)
		c.json = false
		b, err := c.call("GET", "/gatekeeper/approvals/"+url.PathEscape(id)+"/export", nil)
		if err != nil {
			return err
		}
		if out == "" || out == "-" {
			_, err := cmd.OutOrStdout().Write(b)
			return err
		}
		if err := writeEvidence(out, b, force); err != nil {
			return err
		}
		r, err := audit.VerifyEvidence(b, nil)
		if err != nil {
			return err
		}
		signed := "not signed (the app has no audit_signing_key)"
		if r.Signed {
			signed = "signed by " + r.KeyFingerprint
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "evidence of %s written to %s: %d events, chain head seq %d, %s\nCONFIDENTIAL: do not pass it on without the customer's consent.\n",
			id, out, r.Events, r.Head.Seq, signed)
		return nil
	})
	cmd.AddCommand(verify, export)
}

// writeEvidence writes an export to file, readable by its owner only. It
// does not replace a file that exists unless force: an export is
// confidential, and a typo must not overwrite someone else's.
func writeEvidence(file string, b []byte, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(file, flags, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("--output: %s exists; give another file, or --force to overwrite it", file)
	}
	if err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	if force {
		// An existing file keeps its mode through O_TRUNC.
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return fmt.Errorf("--output: %w", err)
		}
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("--output: %w", err)
	}
	return f.Close()
}

// printEvidence prints what verifying an export found; it fails when that
// was not good.
func printEvidence(w io.Writer, r audit.EvidenceReport, asJSON bool) error {
	if asJSON {
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Fprintf(w, "%s\n", b)
	} else if r.OK {
		signed := "NOT SIGNED: it shows its events belong to the chain up to its head, not that none were left out; " +
			"nothing vouches for its " + strings.Join(r.Unbound, ", ")
		switch {
		case r.Pinned:
			signed = "signed by the key given (" + r.KeyFingerprint + ")"
		case r.Signed:
			signed = "the signature is valid, but the signer is NOT PINNED: anyone can sign with a key of their own; " +
				"verify with --key and the platform's public key to know who signed (this key is " + r.KeyFingerprint + ")"
		}
		fmt.Fprintf(w, "evidence of %s intact: %d events linked to the approval chain's head at seq %d (%s), %s\n",
			r.ApprovalID, r.Events, r.Head.Seq, shortHash(r.Head.Hash), signed)
	}
	if !r.OK {
		if r.BrokenAt > 0 {
			return fmt.Errorf("the evidence of %s is broken at seq %d: %s", r.ApprovalID, r.BrokenAt, r.Problem)
		}
		return fmt.Errorf("the evidence of %s does not verify: %s", r.ApprovalID, r.Problem)
	}
	return nil
}

// verifyFile verifies file, read once: an audit log (stored events a line,
// as the file store's audit.jsonl holds them; with the store's state.json
// beside it, against the chain heads recorded there), whose chains' reports
// it returns, or an evidence export, checked against the public key in
// keyFile when that is not "", whose report it returns.
func verifyFile(file, keyFile string) ([]audit.ChainReport, *audit.EvidenceReport, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	if first, _ := r.Peek(len(`{"id"`)); len(first) > 0 && first[0] == '{' && string(first) != `{"id"` {
		// An export: one JSON document, which does not begin as every
		// stored event does.
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, nil, err
		}
		var trusted ed25519.PublicKey
		if keyFile != "" {
			if trusted, err = audit.LoadPublicKey(keyFile); err != nil {
				return nil, nil, fmt.Errorf("--key: %w", err)
			}
		}
		ev, err := audit.VerifyEvidence(b, trusted)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", file, err)
		}
		return nil, &ev, nil
	}
	if keyFile != "" {
		return nil, nil, fmt.Errorf("--key: %s is not an evidence export; only exports are signed", file)
	}
	var state struct {
		Chains map[string]audit.ChainHead `json:"chains"`
	}
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "state.json")); err == nil {
		if err := json.Unmarshal(b, &state); err != nil {
			return nil, nil, fmt.Errorf("state.json beside %s: %w", file, err)
		}
	}
	reports, err := audit.VerifyLog(r, state.Chains)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	return reports, nil, nil
}

// exportHead is the chain head an evidence export names, once the export
// itself verifies (against the key in keyFile, when given).
func exportHead(file, keyFile string) (audit.KnownHead, error) {
	_, ev, err := verifyFile(file, keyFile)
	switch {
	case err != nil:
		return audit.KnownHead{}, fmt.Errorf("--against: %w", err)
	case ev == nil:
		return audit.KnownHead{}, fmt.Errorf("--against: %s is not an evidence export", file)
	case !ev.OK:
		return audit.KnownHead{}, fmt.Errorf("--against: the export does not verify: %s", ev.Problem)
	}
	return audit.KnownHead{Kind: "approval", ChainHead: ev.Head}, nil
}
