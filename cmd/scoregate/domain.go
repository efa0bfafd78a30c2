package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/scoregate/scoregate/certs"
)

// aksDNSLabelAnnotation is the Service annotation that gives an AKS
// load balancer's public IP a DNS name label: Azure then publishes
// LABEL.REGION.cloudapp.azure.com for it on its own DNS servers, with no
// record for anyone to make. "Apply a DNS label to the service" in
// Microsoft Learn's "Use a static public IP address and DNS label with
// the Azure Kubernetes Service (AKS) load balancer"
// (learn.microsoft.com/azure/aks/static-ip; MicrosoftDocs/azure-docs
// articles/aks/static-ip.md); added to Kubernetes' Azure cloud provider
// as "service.beta.kubernetes.io/azure-dns-label-name".
const aksDNSLabelAnnotation = "service.beta.kubernetes.io/azure-dns-label-name"

// aciParent follows the region in an Azure Container Instances group's own
// name, DNSNAMELABEL.REGION.azurecontainer.io (the ACI quickstart's
// "aci-demo.eastus.azurecontainer.io", MicrosoftDocs/azure-docs
// articles/container-instances/container-instances-quickstart.md). With a
// dnsNameLabelReusePolicy, ACI adds a hash to the name, so the FQDN to
// use is the one `az container show --query ipAddress.fqdn` prints.
const aciParent = "azurecontainer.io"

// domainConfig is `scoregate domain`'s flags.
type domainConfig struct {
	label, region, storage        string
	overwrite, allowUnknown, json bool
}

func domainFlags(c *domainConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("domain", flag.ContinueOnError)
	fs.StringVar(&c.label, "leaf-domain-label", "", "the `label` the name starts with, as Azure ML's leaf_domain_label: letters, digits and hyphens, at most 57")
	fs.StringVar(&c.region, "region", "", "the Azure `region` the service runs in, such as westeurope")
	fs.StringVar(&c.storage, "storage", "", "`directory` to keep the name in, so that later runs print it again (required: domain picks no directory on its own)")
	fs.BoolVar(&c.overwrite, "overwrite-existing-domain", false, "draw a new random suffix and replace the stored name (then update the DNS label)")
	fs.BoolVar(&c.allowUnknown, "allow-unknown-region", false, "accept a --region that is not in scoregate's list of Azure regions (a region newer than the list)")
	fs.BoolVar(&c.json, "json", false, "print one JSON object instead of the text")
	return fs
}

const domainUsage = `Usage: scoregate domain --leaf-domain-label L --region R --storage DIR [--overwrite-existing-domain] [--allow-unknown-region] [--json]

Draws the name Azure ML's leaf_domain_label L gives in region R,
L + 6 random characters + .R.cloudapp.azure.com, or reads the one already in
--storage, and keeps it there exactly as serve --leaf-domain-label does. Run it
before the deploy: it prints the name alone on the first line, then where the
name goes, so that DNS resolves before serve orders the certificate, then the
serve line with the name itself (--ssl-cname), so that every instance orders
exactly this name whatever its own --storage holds. Run again, it prints the
same name; --overwrite-existing-domain draws a new one.

Flags (each also read from SCOREGATE_<FLAG_IN_UPPER_SNAKE>; a flag wins):
`

// domainOutput is `scoregate domain --json`.
type domainOutput struct {
	FQDN          string            `json:"fqdn"`
	Label         string            `json:"label"`
	Suffix        string            `json:"suffix"`
	DNSLabel      string            `json:"dns_label"` // Label + Suffix
	Region        string            `json:"region"`
	Storage       string            `json:"storage"`
	Drawn         bool              `json:"drawn"`              // by this run
	Replaced      string            `json:"replaced,omitempty"` // the name this run replaced
	AKSAnnotation map[string]string `json:"aks_annotation"`
	ACINameHint   string            `json:"aci_name_hint"`
	Serve         string            `json:"serve"` // the serve command line for this name
}

// runDomain is `scoregate domain`.
func runDomain(args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) error {
	var c domainConfig
	if _, err := parseFlags(domainFlags(&c), args, getenv, stdout, domainUsage); err != nil {
		return err
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"leaf-domain-label", c.label}, {"region", c.region}, {"storage", c.storage}} {
		if f.v == "" {
			missing = append(missing, "--"+f.name)
		}
	}
	if len(missing) > 0 {
		why := ""
		if c.storage == "" {
			// It once defaulted to serve's /var/lib/scoregate, and so
			// wrote that directory on a workstation without a word.
			why = "; --storage is the directory that keeps the drawn name, so that a later run prints the same one, and domain picks none on its own"
		}
		return usagef("domain: %s required%s", strings.Join(missing, ", "), why)
	}
	opts := certs.LeafDomainOptions{AllowUnknownRegion: c.allowUnknown}
	if c.overwrite {
		opts.Overwrite = certs.LeafDrawNew
	}
	d, err := certs.LeafDomainName(c.storage, c.label, c.region, opts)
	if err != nil {
		return leafDomainError(err)
	}
	serve := serveLeafCommand(d.Name, c.storage)
	if c.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false) // aci_name_hint's <dnsNameLabel>
		return enc.Encode(domainOutput{
			FQDN:          d.Name,
			Label:         d.Label,
			Suffix:        d.Suffix,
			DNSLabel:      d.DNSLabel(),
			Region:        d.Region,
			Storage:       c.storage,
			Drawn:         d.Drawn,
			Replaced:      d.Replaced,
			AKSAnnotation: map[string]string{aksDNSLabelAnnotation: d.DNSLabel()},
			ACINameHint:   aciName("<dnsNameLabel>", d.Region),
			Serve:         serve,
		})
	}
	// What happened goes to stderr, so that stdout is the same for the
	// same name, however it came about.
	file := filepath.Join(c.storage, "leaf-domain-name")
	switch {
	case d.Replaced != "":
		fmt.Fprintf(stderr, "scoregate: drew a new name, replacing %s in %s: update the DNS label wherever the old one is set\n", d.Replaced, file)
	case d.Drawn:
		fmt.Fprintf(stderr, "scoregate: drew a new name and kept it in %s\n", file)
	default:
		fmt.Fprintf(stderr, "scoregate: the name kept in %s\n", file)
	}
	fmt.Fprintln(stdout, d.Name)
	fmt.Fprintln(stdout)
	for _, line := range leafDNSHelp(d.Name) {
		fmt.Fprintln(stdout, line)
	}
	fmt.Fprintf(stdout, "\nThen serve it, with your other flags (the name is on the line, so every instance orders this name whatever its --storage holds; instances that share a --storage order it once):\n  %s\n", serve)
	return nil
}

// leafDNSHelp says where a --leaf-domain-label name (fqdn, as
// certs.LeafDomainName returned it) goes so that it resolves: one line
// each for AKS (the Service annotation), any other public IP, and ACI
// (whose own names are different). `scoregate domain` prints these lines;
// serve can log them when it starts with --leaf-domain-label.
func leafDNSHelp(fqdn string) []string {
	dnsLabel, rest, _ := strings.Cut(fqdn, ".")
	region, _, _ := strings.Cut(rest, ".")
	return []string{
		fmt.Sprintf("AKS: annotate the scoring Service with %s: %s; Azure then publishes %s for its public IP itself (no DNS record to make)",
			aksDNSLabelAnnotation, dnsLabel, fqdn),
		fmt.Sprintf("AKS with deploy/aks/overlays/acme: put the name in its kustomization.yaml, configMapGenerator scoregate-name, literal cname=%s; that one value feeds both the DaemonSet's SCOREGATE_SSL_CNAME and the Service's azure-dns-label-name annotation",
			fqdn),
		fmt.Sprintf("Another public IP (a VM, a load balancer): set its DNS name label, az network public-ip update --resource-group RG --name IP --dns-name %s",
			dnsLabel),
		fmt.Sprintf("ACI: leaf_domain_label names are for public IPs (AKS); a container group's own name is %s (az container show --query ipAddress.fqdn): serve that with --acme --ssl-cname instead of --leaf-domain-label",
			aciName("<dnsNameLabel>", region)),
	}
}

// aciName is an ACI container group's own name in region.
func aciName(dnsNameLabel, region string) string {
	return dnsNameLabel + "." + region + "." + aciParent
}

// serveLeafCommand is the serve command line for the drawn name fqdn. It
// gives the name itself as --ssl-cname, not --leaf-domain-label: a pod
// starting on a fresh volume (AKS's Azure Files) would otherwise draw a
// name of its own, which the DNS label published for the first one does
// not resolve. storage is domain's --storage, which serve may share.
func serveLeafCommand(fqdn, storage string) string {
	return fmt.Sprintf("scoregate serve --acme --ssl-cname %s --storage %s --listen :443 --http-listen :80", fqdn, shellQuote(storage))
}

// leafDomainError turns an error from certs.LeafDomainName into one line
// that names the flag (--leaf-domain-label, --region, --storage) and says
// what to do. serve and domain both use it, so both say the same.
// Configuration problems (*certs.ConfigError) are usage errors, exit 2;
// anything else (no randomness) is returned as it is.
func leafDomainError(err error) error {
	var ce *certs.ConfigError
	if !errors.As(err, &ce) {
		return err
	}
	if name := flagOf[ce.Field]; name != "" {
		if ce.Value != "" {
			err = fmt.Errorf("--%s %q: %w", name, ce.Value, ce.Err)
		} else {
			err = fmt.Errorf("--%s: %w", name, ce.Err)
		}
	}
	switch {
	case errors.Is(err, certs.ErrUnknownRegion):
		err = fmt.Errorf("%w (a region newer than scoregate's list needs --allow-unknown-region)", err)
	case errors.Is(err, certs.ErrLeafDomainMismatch):
		err = fmt.Errorf("%w; add --overwrite-existing-domain to replace it with a new name (then update the DNS label)", err)
	case errors.Is(err, certs.ErrLeafDomainIncomplete):
		err = fmt.Errorf("%w; remove it, or draw a new name with scoregate domain --overwrite-existing-domain", err)
	}
	return usageError{err}
}
